// Where a step's time goes, op by op. While timing is on, every op scope
// records its duration — on the GPU with a pair of CUDA events on the compute
// stream (so the measurement does not serialise the host with the device),
// on the CPU with the wall clock — and op_times() sums them by op name.
// Off by default: a scope then costs one branch. bench/train_bench prints the
// table for one step (LINPAR_OP_TIMES=1).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace linpar {

struct OpTime {
  std::string name;
  double seconds = 0;
  int64_t calls = 0;
};

void enable_op_timing(bool on);
bool op_timing_enabled();
// The totals since the last reset, largest first (waits for the GPU).
std::vector<OpTime> op_times();
void reset_op_times();
// One line per op of op_times() ("# <prefix>op NAME ms calls share"), then the total.
void print_op_times(const std::string& prefix = "", std::FILE* out = stdout);

class OpTimeScope {
 public:
  // `name` must outlive the program (a string literal).
  OpTimeScope(const char* name, Device device);
  ~OpTimeScope();
  OpTimeScope(const OpTimeScope&) = delete;
  OpTimeScope& operator=(const OpTimeScope&) = delete;

 private:
  const char* name_ = nullptr;  // null when timing is off
  Device device_;
  int slot_ = -1;
  double start_s_ = 0;
};

}  // namespace linpar

#define LINPAR_OP_TIME(name, device) ::linpar::OpTimeScope linpar_op_time_scope_(name, device)
