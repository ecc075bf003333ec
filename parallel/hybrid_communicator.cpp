#include "parallel/hybrid_communicator.h"

#include "core/error.h"
#include "parallel/nccl_communicator.h"

namespace linpar {

MPI_Comm mpi_comm_of(Communicator& comm) {
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(&comm)) return mpi->comm();
  if (auto* hybrid = dynamic_cast<HybridCommunicator*>(&comm)) return hybrid->mpi().comm();
  LINPAR_CHECK(false, "communicator {} has no MPI communicator", comm.group());
  return MPI_COMM_NULL;
}

HybridCommunicator::HybridCommunicator(MPI_Comm comm, std::string group, bool split_directions)
    : Communicator(group) {
  // NCCL setup broadcasts its unique id over the group's MPI communicator
  // (the calls are collective and ordered alike on every member).
  mpi_ = std::make_unique<MpiCommunicator>(comm, group);
  nccl_up_ = make_nccl_communicator(comm, group);
  if (split_directions) nccl_down_ = make_nccl_communicator(comm, group);
}

HybridCommunicator::~HybridCommunicator() = default;

Communicator& HybridCommunicator::backend(const Tensor& t) {
  if (t.device() == Device::CUDA) return *nccl_up_;
  return *mpi_;
}

Communicator& HybridCommunicator::p2p_backend(const Tensor& t, bool towards_higher) {
  if (t.device() != Device::CUDA) return *mpi_;
  return towards_higher || !nccl_down_ ? *nccl_up_ : *nccl_down_;
}

template <typename Call>
auto HybridCommunicator::counted(Communicator& comm, Call&& call) -> decltype(call(comm)) {
  const CommCounters before = comm.counters();
  auto add = [&] {
    const CommCounters& after = comm.counters();
    for (int k = 0; k < kCollectiveKinds; ++k) {
      counters_.bytes[static_cast<size_t>(k)] += after.bytes[static_cast<size_t>(k)] - before.bytes[static_cast<size_t>(k)];
      counters_.calls[static_cast<size_t>(k)] += after.calls[static_cast<size_t>(k)] - before.calls[static_cast<size_t>(k)];
    }
  };
  if constexpr (std::is_void_v<decltype(call(comm))>) {
    call(comm);
    add();
  } else {
    auto result = call(comm);
    add();
    return result;
  }
}

void HybridCommunicator::all_reduce(Tensor& t) {
  counted(backend(t), [&](Communicator& c) { c.all_reduce(t); });
}
void HybridCommunicator::all_reduce_max(Tensor& t) {
  counted(backend(t), [&](Communicator& c) { c.all_reduce_max(t); });
}
std::unique_ptr<CommRequest> HybridCommunicator::all_reduce_async(Tensor& t) {
  return counted(backend(t), [&](Communicator& c) { return c.all_reduce_async(t); });
}
std::unique_ptr<CommRequest> HybridCommunicator::all_reduce_average_async(Tensor& t) {
  return counted(backend(t), [&](Communicator& c) { return c.all_reduce_average_async(t); });
}
void HybridCommunicator::all_gather(const Tensor& in, Tensor& out) {
  counted(backend(in), [&](Communicator& c) { c.all_gather(in, out); });
}
std::unique_ptr<CommRequest> HybridCommunicator::all_gather_async(const Tensor& in, Tensor& out) {
  return counted(backend(in), [&](Communicator& c) { return c.all_gather_async(in, out); });
}
void HybridCommunicator::reduce_scatter(const Tensor& in, Tensor& out) {
  counted(backend(in), [&](Communicator& c) { c.reduce_scatter(in, out); });
}
std::unique_ptr<CommRequest> HybridCommunicator::reduce_scatter_async(const Tensor& in,
                                                                      Tensor& out) {
  return counted(backend(in), [&](Communicator& c) { return c.reduce_scatter_async(in, out); });
}
void HybridCommunicator::broadcast(Tensor& t, int root) {
  counted(backend(t), [&](Communicator& c) { c.broadcast(t, root); });
}
void HybridCommunicator::all_to_all(const Tensor& in, Tensor& out) {
  counted(backend(in), [&](Communicator& c) { c.all_to_all(in, out); });
}
void HybridCommunicator::send(const Tensor& t, int peer) {
  counted(p2p_backend(t, peer > rank()), [&](Communicator& c) { c.send(t, peer); });
}
void HybridCommunicator::recv(Tensor& t, int peer) {
  // A message from a lower rank travels towards higher ranks.
  counted(p2p_backend(t, peer < rank()), [&](Communicator& c) { c.recv(t, peer); });
}
std::unique_ptr<CommRequest> HybridCommunicator::send_async(const Tensor& t, int peer) {
  return counted(p2p_backend(t, peer > rank()), [&](Communicator& c) { return c.send_async(t, peer); });
}
std::unique_ptr<CommRequest> HybridCommunicator::recv_async(Tensor& t, int peer) {
  return counted(p2p_backend(t, peer < rank()), [&](Communicator& c) { return c.recv_async(t, peer); });
}
void HybridCommunicator::barrier() { mpi_->barrier(); }

}  // namespace linpar
