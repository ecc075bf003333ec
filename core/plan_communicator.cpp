#include "core/plan_communicator.h"

#include "core/error.h"

namespace linpar {

namespace {
struct Done final : CommRequest {
  void wait() override {}
};
// Only meta tensors pass: a real tensor here would be a planner bug that
// silently leaves its values unreduced.
void check_meta(const Tensor& t) {
  LINPAR_CHECK(t.is_meta(), "a planning communicator was given a {} tensor",
               device_name(t.device()));
}
}  // namespace

PlanCommunicator::PlanCommunicator(std::string group, int rank, int size, bool averages_inside)
    : Communicator(std::move(group)), rank_(rank), size_(size), averages_inside_(averages_inside) {
  LINPAR_CHECK(size >= 1 && rank >= 0 && rank < size, "planning group rank {} of {}", rank, size);
}

void PlanCommunicator::all_reduce(Tensor& t) { all_reduce_async(t); }

void PlanCommunicator::all_reduce_max(Tensor& t) {
  check_meta(t);
  count_call(CollectiveKind::AllReduce, static_cast<int64_t>(t.nbytes()));
}

std::unique_ptr<CommRequest> PlanCommunicator::all_reduce_async(Tensor& t) {
  check_meta(t);
  count_call(CollectiveKind::AllReduce, static_cast<int64_t>(t.nbytes()));
  return std::make_unique<Done>();
}

std::unique_ptr<CommRequest> PlanCommunicator::all_reduce_average_async(Tensor& t) {
  if (!averages_inside_) return Communicator::all_reduce_average_async(t);
  return all_reduce_async(t);
}

void PlanCommunicator::all_gather(const Tensor& in, Tensor& out) { all_gather_async(in, out); }

std::unique_ptr<CommRequest> PlanCommunicator::all_gather_async(const Tensor& in, Tensor& out) {
  check_meta(in);
  check_meta(out);
  LINPAR_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(),
               "all_gather {} -> {}", shape_string(in.shape()), shape_string(out.shape()));
  count_call(CollectiveKind::AllGather, static_cast<int64_t>(in.nbytes()));
  return std::make_unique<Done>();
}

void PlanCommunicator::reduce_scatter(const Tensor& in, Tensor& out) {
  reduce_scatter_async(in, out);
}

std::unique_ptr<CommRequest> PlanCommunicator::reduce_scatter_async(const Tensor& in, Tensor& out) {
  check_meta(in);
  check_meta(out);
  LINPAR_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(),
               "reduce_scatter {} -> {}", shape_string(in.shape()), shape_string(out.shape()));
  count_call(CollectiveKind::ReduceScatter, static_cast<int64_t>(out.nbytes()));
  return std::make_unique<Done>();
}

void PlanCommunicator::broadcast(Tensor& t, int) {
  check_meta(t);
  count_call(CollectiveKind::Broadcast, static_cast<int64_t>(t.nbytes()));
}

void PlanCommunicator::all_to_all(const Tensor& in, Tensor& out) {
  check_meta(in);
  check_meta(out);
  LINPAR_CHECK(in.numel() == out.numel() && in.numel() % size_ == 0, "all_to_all {} -> {}",
               shape_string(in.shape()), shape_string(out.shape()));
  count_call(CollectiveKind::AllToAll, static_cast<int64_t>(in.nbytes()));
}

void PlanCommunicator::send(const Tensor& t, int peer) { send_async(t, peer); }

void PlanCommunicator::recv(Tensor& t, int peer) { recv_async(t, peer); }

std::unique_ptr<CommRequest> PlanCommunicator::send_async(const Tensor& t, int) {
  check_meta(t);
  count_call(CollectiveKind::SendRecv, static_cast<int64_t>(t.nbytes()));
  return std::make_unique<Done>();
}

std::unique_ptr<CommRequest> PlanCommunicator::recv_async(Tensor& t, int) {
  check_meta(t);
  return std::make_unique<Done>();  // bytes are counted by the sender
}

}  // namespace linpar
