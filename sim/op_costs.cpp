#include "sim/op_costs.h"

#include <algorithm>
#include <iterator>

namespace linpar::sim {

namespace {

// torch SDPA's kernels (cuDNN, torch 2.11) on an H200 by head size: the
// share of the bf16 peak of the key loop, forward and backward, fitted with
// the fixed costs, half-length and dropout cost of Efficiency by
// scripts/fit_sdpa.py (docs/data/sdpa-torch-h200.json, -held-out.json).
// Heads of 160 run a slow backward (0.31); 64 and 96 run alike.
struct CoreShare {
  double head_dim, forward, backward;
};
constexpr CoreShare kCoreShares[] = {
    {64, 0.525, 0.476}, {96, 0.533, 0.457}, {128, 0.688, 0.590}, {160, 0.597, 0.313}, {256, 0.621, 0.449}};
// Heads of 128, forward and backward together (backward 2.5× the FLOPs).
constexpr CoreShare kCore128 = kCoreShares[2];
static_assert(kCore128.head_dim == 128);
constexpr double kCoreShare128 = 3.5 / (1 / kCore128.forward + 2.5 / kCore128.backward);

}  // namespace

double softmax_core_share(int64_t head_dim, bool backward, const Efficiency& eff) {
  auto pick = [backward](const CoreShare& c) { return backward ? c.backward : c.forward; };
  // The kernels pad the head to a multiple of 32 (heads of 80 measured at
  // 80/96 of 96's rate; docs/validation.md): the padded head's rate, of
  // which the real head's FLOPs are d / padded.
  const int64_t padded = (std::max<int64_t>(head_dim, 1) + 31) / 32 * 32;
  const double d = static_cast<double>(padded);
  double share = pick(kCoreShares[0]);
  for (size_t i = 1; i < std::size(kCoreShares); ++i) {
    const CoreShare &lo = kCoreShares[i - 1], &hi = kCoreShares[i];
    if (d >= hi.head_dim) {
      share = pick(hi);
    } else if (d > lo.head_dim) {
      share = pick(lo) + (pick(hi) - pick(lo)) * (d - lo.head_dim) / (hi.head_dim - lo.head_dim);
    }
  }
  share *= static_cast<double>(head_dim) / d;
  return std::min(1.0, share * eff.softmax_attention / kCoreShare128);
}

namespace {

double softmax_core_seconds(const PlannedOp& op, const GpuSpec& gpu, const Efficiency& eff) {
  const double flops = static_cast<double>(op.flops);
  const CoreShape& s = op.core;
  if (s.length <= 0) return flops / (gpu.bf16_tflops * 1e12 * eff.softmax_attention);
  const double loop = flops / (gpu.bf16_tflops * 1e12 * softmax_core_share(s.head_dim, s.backward, eff)) *
                      (1 + eff.softmax_attention_half_length / static_cast<double>(s.length));
  const double fixed = (s.backward ? eff.softmax_attention_backward_us : eff.softmax_attention_forward_us) * 1e-6;
  const double dropout_ops =
      s.backward ? eff.softmax_attention_dropout_backward_ops : eff.softmax_attention_dropout_forward_ops;
  const double dropout = s.dropout ? static_cast<double>(s.scores) * dropout_ops / (gpu.f32_tflops * 1e12) : 0;
  return fixed + loop + dropout;
}

}  // namespace

double op_seconds(const PlannedOp& op, const GpuSpec& gpu, const Efficiency& eff) {
  const double flops = static_cast<double>(op.flops);
  const double bytes = static_cast<double>(op.bytes_read + op.bytes_written);
  const double memory = bytes / (gpu.hbm_gbps * 1e9 * eff.memory);
  switch (op.kind) {
    case OpClass::Matmul:
      return eff.matmul_overhead_us * 1e-6 + std::max(flops / (gpu.bf16_tflops * 1e12 * eff.matmul), memory);
    case OpClass::Attention:
      return std::max(flops / (gpu.bf16_tflops * 1e12 * eff.attention), memory);
    case OpClass::SoftmaxAttention:
      return std::max(softmax_core_seconds(op, gpu, eff), memory);
    case OpClass::Memory:
      return bytes / (gpu.hbm_gbps * 1e9 * eff.elementwise);
  }
  return memory;
}

PlanCost plan_cost(const OpPlan& plan, const GpuSpec& gpu, const Efficiency& eff) {
  PlanCost cost;
  for (const PlannedOp& op : plan.ops()) {
    const double t = op_seconds(op, gpu, eff);
    cost.seconds += t;
    cost.flops += op.flops;
    switch (op.kind) {
      case OpClass::Matmul:
        cost.matmul_seconds += t;
        break;
      case OpClass::Attention:
      case OpClass::SoftmaxAttention:
        cost.attention_seconds += t;
        break;
      case OpClass::Memory:
        cost.memory_seconds += t;
        break;
    }
  }
  return cost;
}

}  // namespace linpar::sim
