#include "sim/op_costs.h"

#include <algorithm>

namespace linpar::sim {

OpClass classify_op(const std::string& name) {
  for (const char* part : {"lightning_attention.", "lasp.", "lasp2.", "allgather.", "ulysses."}) {
    if (name.find(part) != std::string::npos) return OpClass::Attention;
  }
  if (name.find("attention.core.") != std::string::npos) return OpClass::SoftmaxAttention;
  for (const char* part : {"qkvu_proj.", "out_proj.", "channel_mixer.l1.", "channel_mixer.l2.",
                           "channel_mixer.l3.", "lm_head.",
                           // model/softmax_transformer.h: projections, MLP and the
                           // unfused core's two batched products.
                           "attention.qkv_proj.", "mlp.fc1.", "mlp.fc2.", "mlp.gate_up.",
                           "mlp.down.", "attention.scores.", "attention.context."}) {
    if (name.find(part) != std::string::npos) return OpClass::Matmul;
  }
  return OpClass::Memory;
}

double op_seconds(const PlannedOp& op, const GpuSpec& gpu, const Efficiency& eff) {
  const double flops = static_cast<double>(op.flops);
  const double bytes = static_cast<double>(op.bytes_read + op.bytes_written);
  const double memory = bytes / (gpu.hbm_gbps * 1e9 * eff.memory);
  switch (classify_op(op.name)) {
    case OpClass::Matmul:
      return eff.matmul_overhead_us * 1e-6 + std::max(flops / (gpu.bf16_tflops * 1e12 * eff.matmul), memory);
    case OpClass::Attention:
      return std::max(flops / (gpu.bf16_tflops * 1e12 * eff.attention), memory);
    case OpClass::SoftmaxAttention:
      return std::max(flops / (gpu.bf16_tflops * 1e12 * eff.softmax_attention), memory);
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
    switch (classify_op(op.name)) {
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
