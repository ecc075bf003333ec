#include "core/op_stats.h"

namespace linpar {

namespace {
thread_local FlopScope* innermost = nullptr;
}

FlopScope::FlopScope() : outer_(innermost) { innermost = this; }
FlopScope::~FlopScope() { innermost = outer_; }

void count_flops(int64_t flops) {
  for (FlopScope* scope = innermost; scope != nullptr; scope = scope->outer_)
    scope->flops_ += flops;
}

}  // namespace linpar
