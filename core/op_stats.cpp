#include "core/op_stats.h"

#include "core/error.h"

namespace linpar {

namespace {
thread_local FlopScope* innermost = nullptr;
thread_local OpRecorder* recorder = nullptr;
thread_local OpPrefix* prefix_now = nullptr;
}  // namespace

FlopScope::FlopScope() : outer_(innermost) { innermost = this; }
FlopScope::~FlopScope() { innermost = outer_; }

void count_flops(int64_t flops) {
  for (FlopScope* scope = innermost; scope != nullptr; scope = scope->outer_)
    scope->flops_ += flops;
  if (recorder != nullptr) recorder->current().flops += flops;
}

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::Memory:
      return "memory";
    case OpKind::Attention:
      return "attention";
    case OpKind::Matmul:
      return "matmul";
    case OpKind::SoftmaxAttention:
      return "softmax_attention";
  }
  return "?";
}

OpKind RecordedOp::kind() const {
  for (OpKind k : {OpKind::Matmul, OpKind::SoftmaxAttention, OpKind::Attention}) {
    if (kinds & (1u << static_cast<unsigned>(k))) return k;
  }
  return OpKind::Memory;
}

void count_traffic(OpKind kind, std::initializer_list<const Tensor*> read,
                   std::initializer_list<const Tensor*> written) {
  if (recorder == nullptr) return;
  auto bytes = [](std::initializer_list<const Tensor*> tensors) {
    int64_t total = 0;
    for (const Tensor* t : tensors) {
      if (t != nullptr && t->defined()) total += static_cast<int64_t>(t->nbytes());
    }
    return total;
  };
  count_traffic(kind, bytes(read), bytes(written));
}

void count_traffic(OpKind kind, int64_t bytes_read, int64_t bytes_written) {
  if (recorder == nullptr) return;
  RecordedOp& op = recorder->current();
  op.kinds |= static_cast<uint8_t>(1u << static_cast<unsigned>(kind));
  op.bytes_read += bytes_read;
  op.bytes_written += bytes_written;
}

OpRecorder::OpRecorder() : previous_(recorder) { recorder = this; }
OpRecorder::~OpRecorder() { recorder = previous_; }

OpScope::OpScope(const std::string& prefix, const char* name) : recorder_(recorder) {
  if (recorder_ != nullptr) open(prefix + name);
}

OpScope::OpScope(const char* name) : recorder_(recorder) {
  if (recorder_ != nullptr)
    open((prefix_now != nullptr ? prefix_now->prefix_ : std::string()) + name);
}

void OpScope::open(std::string name) {
  LINPAR_CHECK(!recorder_->open_, "op scope {} opened inside {}", name,
               recorder_->ops_.back().name);
  recorder_->ops_.emplace_back().name = std::move(name);
  recorder_->open_ = true;
}

OpPrefix::OpPrefix(const std::string& prefix) : prefix_(prefix), outer_(prefix_now) {
  prefix_now = this;
}
OpPrefix::~OpPrefix() { prefix_now = outer_; }

OpScope::~OpScope() {
  if (recorder_ != nullptr) recorder_->open_ = false;
}

void record_collective(CollectiveKind kind, const std::string& group, int64_t payload_bytes) {
  if (recorder != nullptr) recorder->current().collectives.push_back({kind, group, payload_bytes});
}

}  // namespace linpar
