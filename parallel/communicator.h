// The MPI backend of the Communicator interface (core/communicator.h), for
// CPU tensors; ProcessGrid creates one per group.
#pragma once

#include <mpi.h>

#include "core/communicator.h"

namespace linpar {

// MPI backend (CPU tensors, f32/f64/i32). Owns its MPI communicator.
class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed in the destructor unless it is MPI_COMM_WORLD).
  MpiCommunicator(MPI_Comm comm, std::string group);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

  void all_reduce(Tensor& t) override;
  void all_reduce_max(Tensor& t) override;
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) override;
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

  // Experiments only: all-reduces on this communicator complete no sooner
  // than their wire bytes take at `gbps` Gbit/s (emulates a slow DP network on
  // a machine whose MPI runs over shared memory). 0: off.
  void set_emulated_gbps(double gbps) { emulated_gbps_ = gbps; }

 private:
  std::unique_ptr<CommRequest> on_emulated_link(std::unique_ptr<CommRequest> request,
                                                int64_t wire) const;
  double emulated_gbps_ = 0;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace linpar
