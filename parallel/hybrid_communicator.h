// The communicator of a process-grid group on the GPU: CUDA tensors go over
// NCCL, host tensors (gradient-norm scalars, metrics, checkpoint handshakes)
// over MPI, behind the one Communicator interface, so the strategies run
// unchanged on either device. Counters add up both backends' traffic.
//
// Point-to-point on NCCL: one communicator's operations execute in issue
// order on its stream, and a send does not complete before the peer's
// receive starts. A pipeline stage sends activations forward while its
// neighbour sends gradients back, so on one stream each would wait for the
// other. With `split_directions` (the pipeline group) traffic towards higher
// ranks (activations) and towards lower ranks (gradients) get a communicator
// and stream each; every stream then holds a chain in the same order on both
// ends, which cannot deadlock.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace linpar {

// The MPI communicator behind a group's communicator (MPI or hybrid), for
// host-side exchanges that need MPI itself.
MPI_Comm mpi_comm_of(Communicator& comm);

class HybridCommunicator final : public Communicator {
 public:
  // Collective over `comm` (every member calls it); takes ownership of `comm`.
  HybridCommunicator(MPI_Comm comm, std::string group, bool split_directions);
  ~HybridCommunicator() override;

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  MpiCommunicator& mpi() { return *mpi_; }

  void all_reduce(Tensor& t) override;
  void all_reduce_max(Tensor& t) override;
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) override;
  std::unique_ptr<CommRequest> all_reduce_average_async(Tensor& t) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out) override;
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out) override;
  void broadcast(Tensor& t, int root) override;
  void all_to_all(const Tensor& in, Tensor& out) override;
  void send(const Tensor& t, int peer) override;
  void recv(Tensor& t, int peer) override;
  std::unique_ptr<CommRequest> send_async(const Tensor& t, int peer) override;
  std::unique_ptr<CommRequest> recv_async(Tensor& t, int peer) override;
  void barrier() override;

 private:
  // The backend for a tensor; for point-to-point, by direction too.
  Communicator& backend(const Tensor& t);
  Communicator& p2p_backend(const Tensor& t, bool towards_higher);
  // Runs `call` on `comm` and adds the traffic it counted to this one's.
  template <typename Call>
  auto counted(Communicator& comm, Call&& call) -> decltype(call(comm));

  std::unique_ptr<MpiCommunicator> mpi_;
  std::unique_ptr<Communicator> nccl_up_;    // collectives, and p2p towards higher ranks
  std::unique_ptr<Communicator> nccl_down_;  // p2p towards lower ranks (split_directions)
};

}  // namespace linpar
