#include "model/op_plan.h"

namespace linpar {

int64_t OpPlan::total_flops() const {
  int64_t total = 0;
  for (const PlannedOp& op : ops_) total += op.flops;
  return total;
}

int64_t OpPlan::total_bytes() const {
  int64_t total = 0;
  for (const PlannedOp& op : ops_) total += op.bytes_read + op.bytes_written;
  return total;
}

}  // namespace linpar
