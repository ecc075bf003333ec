#include "core/communicator.h"

#include "core/op_stats.h"
#include "core/ops/elementwise.h"

namespace linpar {

const char* collective_name(CollectiveKind kind) {
  static const char* names[] = {"all_reduce", "all_gather", "reduce_scatter",
                                "broadcast",  "all_to_all", "send_recv"};
  return names[static_cast<int>(kind)];
}

int64_t wire_bytes(CollectiveKind kind, int64_t n, int64_t b) {
  if (n <= 1) return kind == CollectiveKind::SendRecv ? b : 0;
  switch (kind) {
    case CollectiveKind::AllReduce:
      return 2 * (n - 1) * b / n;
    case CollectiveKind::AllGather:
      return (n - 1) * b;  // b: this rank's input
    case CollectiveKind::ReduceScatter:
      return (n - 1) * b;  // b: this rank's output
    case CollectiveKind::Broadcast:
      return (n - 1) * b / n;
    case CollectiveKind::AllToAll:
      return (n - 1) * b / n;
    case CollectiveKind::SendRecv:
      return b;
  }
  return 0;
}

int64_t CommCounters::total_bytes() const {
  int64_t total = 0;
  for (int64_t b : bytes) total += b;
  return total;
}

void CommCounters::add(CollectiveKind kind, int64_t wire) {
  bytes[static_cast<size_t>(kind)] += wire;
  calls[static_cast<size_t>(kind)] += 1;
}

namespace {
// The sum's request; waiting for it divides by the group size.
class AveragedRequest : public CommRequest {
 public:
  AveragedRequest(std::unique_ptr<CommRequest> sum, Tensor& t, int ranks)
      : sum_(std::move(sum)), t_(t), ranks_(ranks) {}
  ~AveragedRequest() override {
    if (sum_) sum_->wait();
  }
  void wait() override {
    if (!sum_) return;
    sum_->wait();
    sum_.reset();
    scale(1.0 / static_cast<double>(ranks_), t_);
  }

 private:
  std::unique_ptr<CommRequest> sum_;
  Tensor& t_;
  int ranks_;
};
}  // namespace

std::unique_ptr<CommRequest> Communicator::all_reduce_average_async(Tensor& t) {
  return std::make_unique<AveragedRequest>(all_reduce_async(t), t, size());
}

void Communicator::count_call(CollectiveKind kind, int64_t payload_bytes) {
  counters_.add(kind, wire_bytes(kind, size(), payload_bytes));
  record_collective(kind, group_, payload_bytes);
}

}  // namespace linpar
