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
  recorder_->ops_.push_back(RecordedOp{std::move(name), 0, {}});
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
