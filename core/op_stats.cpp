#include "core/op_stats.h"

#include "core/error.h"

namespace linpar {

namespace {
thread_local FlopScope* innermost = nullptr;
thread_local OpRecorder* recorder = nullptr;
thread_local OpPrefix* prefix_now = nullptr;
thread_local OpPlace* place_now = nullptr;
}  // namespace

FlopScope::FlopScope() : outer_(innermost) { innermost = this; }
FlopScope::~FlopScope() { innermost = outer_; }

void count_flops(int64_t flops) {
  for (FlopScope* scope = innermost; scope != nullptr; scope = scope->outer_)
    scope->flops_ += flops;
  if (recorder != nullptr) recorder->current().flops += flops;
}

bool plan_only(const Tensor& t, int64_t flops) {
  if (!t.is_meta()) return false;
  // Into the plan being recorded only: a plan is no work done, so the
  // FlopScopes open around it (a run's count) do not receive it.
  if (recorder != nullptr) recorder->current().flops += flops;
  return true;
}

void count_product(int64_t m, int64_t n, int64_t k) {
  if (recorder == nullptr) return;
  RecordedOp& op = recorder->current();
  const MatmulShape shape{1, m, n, k, recorder->open_ ? recorder->weight_ : ProductWeight::Other};
  LINPAR_CHECK(op.matmul.batch == 0 || op.matmul == shape,
               "op {} ran two products: [{}, {}]·[{}, {}] and [{}, {}]·[{}, {}]", op.name,
               op.matmul.m, op.matmul.k, op.matmul.k, op.matmul.n, m, k, k, n);
  op.matmul = shape;
}

void count_attention_width(int64_t dk) {
  if (recorder != nullptr) recorder->current().head_dim = static_cast<int16_t>(dk);
}

void note_ring_receive(RingReceive receive) {
  if (recorder != nullptr) recorder->next_receive_ = receive;
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

OpScope::OpScope(const std::string& prefix, const char* name, ProductWeight weight)
    : recorder_(recorder) {
  if (recorder_ != nullptr) open(prefix + name, weight);
}

OpScope::OpScope(const char* name, ProductWeight weight) : recorder_(recorder) {
  if (recorder_ != nullptr)
    open((prefix_now != nullptr ? prefix_now->prefix_ : std::string()) + name, weight);
}

void OpScope::open(std::string name, ProductWeight weight) {
  LINPAR_CHECK(!recorder_->open_, "op scope {} opened inside {}", name,
               recorder_->ops_.back().name);
  RecordedOp& op = recorder_->ops_.emplace_back();
  op.name = std::move(name);
  if (place_now != nullptr) {
    op.layer = place_now->layer_;
    op.pass = place_now->pass_;
  }
  op.receive = recorder_->next_receive_;
  recorder_->next_receive_ = RingReceive::None;
  recorder_->weight_ = weight;
  recorder_->open_ = true;
}

OpPlace::OpPlace(int64_t layer, Pass pass)
    : layer_(static_cast<int32_t>(layer)), pass_(pass), outer_(place_now) {
  place_now = this;
}
OpPlace::~OpPlace() { place_now = outer_; }

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
