#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>

#include "core/error.h"
#include "parallel/communicator.h"

namespace linpar {

namespace {

MPI_Datatype mpi_type(const Tensor& t) {
  LINPAR_CHECK(t.device() == Device::CPU, "MPI communicator: tensor on {}",
               device_name(t.device()));
  switch (t.dtype()) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::BF16:
      break;
  }
  LINPAR_CHECK(false, "MPI communicator: no reduction for dtype {}", dtype_name(t.dtype()));
  return MPI_DATATYPE_NULL;
}

int count_of(const Tensor& t) {
  LINPAR_CHECK(t.numel() < (int64_t{1} << 31), "MPI message of {} elements", t.numel());
  return static_cast<int>(t.numel());
}

// `then` runs once the request completes (an in-place reduce-scatter's move
// of its block), on wait() or on destruction, whichever comes first.
class MpiRequest final : public CommRequest {
 public:
  explicit MpiRequest(MPI_Request request, std::function<void()> then = {})
      : request_(request), then_(std::move(then)) {}
  ~MpiRequest() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
    if (then_) then_();
  }
  void wait() override {
    MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE));
    if (then_) std::exchange(then_, {})();
  }

 private:
  MPI_Request request_;
  std::function<void()> then_;
};

// An operation on an emulated slow link: complete no earlier than its start
// plus its wire bytes at the emulated bandwidth (time spent computing after
// the start counts, so overlap shows as it would on the real link).
class EmulatedLinkRequest final : public CommRequest {
 public:
  EmulatedLinkRequest(std::unique_ptr<CommRequest> inner,
                      std::chrono::steady_clock::time_point ready)
      : inner_(std::move(inner)), ready_(ready) {}
  void wait() override {
    inner_->wait();
    std::this_thread::sleep_until(ready_);
  }

 private:
  std::unique_ptr<CommRequest> inner_;
  std::chrono::steady_clock::time_point ready_;
};

}  // namespace

std::unique_ptr<CommRequest> MpiCommunicator::on_emulated_link(std::unique_ptr<CommRequest> request,
                                                               int64_t wire) const {
  if (emulated_gbps_ <= 0) return request;
  const auto ready = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(static_cast<double>(wire) * 8 / (emulated_gbps_ * 1e9)));
  return std::make_unique<EmulatedLinkRequest>(std::move(request), ready);
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string group)
    : Communicator(std::move(group)), comm_(comm) {
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce(Tensor& t) { all_reduce_async(t)->wait(); }

void MpiCommunicator::all_reduce_max(Tensor& t) {
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), count_of(t), mpi_type(t), MPI_MAX, comm_));
  count_call(CollectiveKind::AllReduce, static_cast<int64_t>(t.nbytes()));
}

std::unique_ptr<CommRequest> MpiCommunicator::all_reduce_async(Tensor& t) {
  MPI_Request request;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), count_of(t), mpi_type(t), MPI_SUM, comm_,
                           &request));
  const int64_t wire = wire_bytes(CollectiveKind::AllReduce, size_, static_cast<int64_t>(t.nbytes()));
  count_call(CollectiveKind::AllReduce, static_cast<int64_t>(t.nbytes()));
  return on_emulated_link(std::make_unique<MpiRequest>(request), wire);
}

void MpiCommunicator::all_gather(const Tensor& in, Tensor& out) { all_gather_async(in, out)->wait(); }

std::unique_ptr<CommRequest> MpiCommunicator::all_gather_async(const Tensor& in, Tensor& out) {
  LINPAR_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(),
               "all_gather {} -> {}", shape_string(in.shape()), shape_string(out.shape()));
  MPI_Request request;
  // In place (NCCL's convention, which MPI spells MPI_IN_PLACE): `in` is
  // this rank's block of `out` (ZeRO-1's values, parallel/data_parallel.cpp).
  const bool in_place =
      in.aliases(out.reshape({-1}).slice0(rank_ * in.numel(), (rank_ + 1) * in.numel()));
  MPI_CHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : in.raw_data(), count_of(in), mpi_type(in),
                           out.raw_data(), count_of(in), mpi_type(out), comm_, &request));
  count_call(CollectiveKind::AllGather, static_cast<int64_t>(in.nbytes()));
  return std::make_unique<MpiRequest>(request);
}

void MpiCommunicator::reduce_scatter(const Tensor& in, Tensor& out) {
  reduce_scatter_async(in, out)->wait();
}

std::unique_ptr<CommRequest> MpiCommunicator::reduce_scatter_async(const Tensor& in, Tensor& out) {
  LINPAR_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(),
               "reduce_scatter {} -> {}", shape_string(in.shape()), shape_string(out.shape()));
  MPI_Request request;
  count_call(CollectiveKind::ReduceScatter, static_cast<int64_t>(out.nbytes()));
  // In place: `out` is this rank's block of `in` (NCCL's convention). MPI
  // leaves the sum at the top of the buffer; it moves to the rank's block
  // once complete (the rest of `in` is spent, as after NCCL's).
  if (out.aliases(in.reshape({-1}).slice0(rank_ * out.numel(), (rank_ + 1) * out.numel()))) {
    MPI_CHECK(MPI_Ireduce_scatter_block(MPI_IN_PLACE, in.raw_data(), count_of(out), mpi_type(in),
                                        MPI_SUM, comm_, &request));
    if (rank_ == 0) return std::make_unique<MpiRequest>(request);
    return std::make_unique<MpiRequest>(
        request, [from = in.raw_data(), to = out.raw_data(), bytes = out.nbytes()] {
          std::memcpy(to, from, bytes);
        });
  }
  MPI_CHECK(MPI_Ireduce_scatter_block(in.raw_data(), out.raw_data(), count_of(out), mpi_type(in),
                                      MPI_SUM, comm_, &request));
  return std::make_unique<MpiRequest>(request);
}

void MpiCommunicator::broadcast(Tensor& t, int root) {
  MPI_CHECK(MPI_Bcast(t.raw_data(), count_of(t), mpi_type(t), root, comm_));
  count_call(CollectiveKind::Broadcast, static_cast<int64_t>(t.nbytes()));
}

void MpiCommunicator::all_to_all(const Tensor& in, Tensor& out) {
  LINPAR_CHECK(in.numel() == out.numel() && in.numel() % size_ == 0, "all_to_all {} -> {}",
               shape_string(in.shape()), shape_string(out.shape()));
  const int block = count_of(in) / size_;
  MPI_CHECK(MPI_Alltoall(in.raw_data(), block, mpi_type(in), out.raw_data(), block, mpi_type(out),
                         comm_));
  count_call(CollectiveKind::AllToAll, static_cast<int64_t>(in.nbytes()));
}

void MpiCommunicator::send(const Tensor& t, int peer) { send_async(t, peer)->wait(); }

void MpiCommunicator::recv(Tensor& t, int peer) { recv_async(t, peer)->wait(); }

std::unique_ptr<CommRequest> MpiCommunicator::send_async(const Tensor& t, int peer) {
  MPI_Request request;
  MPI_CHECK(MPI_Isend(t.raw_data(), count_of(t), mpi_type(t), peer, 0, comm_, &request));
  count_call(CollectiveKind::SendRecv, static_cast<int64_t>(t.nbytes()));
  return std::make_unique<MpiRequest>(request);
}

std::unique_ptr<CommRequest> MpiCommunicator::recv_async(Tensor& t, int peer) {
  MPI_Request request;
  MPI_CHECK(MPI_Irecv(t.raw_data(), count_of(t), mpi_type(t), peer, 0, comm_, &request));
  return std::make_unique<MpiRequest>(request);  // bytes are counted by the sender
}

void MpiCommunicator::barrier() { MPI_CHECK(MPI_Barrier(comm_)); }

}  // namespace linpar
