// Counting what ops actually execute. Every op adds the FLOPs it performs (from
// the loop bounds it ran, not from a model formula) to the counting scopes open
// on this thread; the op-plan test compares that total with the plan.
#pragma once

#include <cstdint>

namespace linpar {

// While alive, receives every count_flops() made on this thread (scopes nest:
// every open scope receives the count).
class FlopScope {
 public:
  FlopScope();
  ~FlopScope();
  FlopScope(const FlopScope&) = delete;
  FlopScope& operator=(const FlopScope&) = delete;

  int64_t flops() const { return flops_; }

 private:
  friend void count_flops(int64_t flops);
  int64_t flops_ = 0;
  FlopScope* outer_;
};

void count_flops(int64_t flops);

}  // namespace linpar
