// The communicator of a group that exists only on paper, for building the op
// plan (model/plan_model.h): the layers' forward and backward run on meta
// tensors over it and every call is counted as a real communicator counts it
// (the payload per rank, recorded into the open op) while nothing moves.
// Receives complete at once; their state is a meta tensor anyway.
#pragma once

#include "core/communicator.h"

namespace linpar {

class PlanCommunicator final : public Communicator {
 public:
  // `group`: the name the real group has ("tp", "sp"). `averages_inside`:
  // an average is made inside the collective, as NCCL's ncclAvg (the GPUs
  // the simulator plans for); false: as MPI, which sums and then scales the
  // buffer in a pass of its own (Communicator's default).
  PlanCommunicator(std::string group, int rank, int size, bool averages_inside = true);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
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
  void barrier() override {}

 private:
  int rank_, size_;
  bool averages_inside_;
};

}  // namespace linpar
