// Time of the ops of the shared op plan (model/op_plan.h) on one GPU, by a
// roofline: an op takes the longer of its FLOPs at the GPU's peak times an
// efficiency and its bytes at the memory bandwidth times an efficiency.
// Matrix products (projections, SGLU, LM head) use the bf16 tensor-core
// peak; lightning attention and the KV-state ops their own efficiency (the
// kernels run far below the GEMM peak: docs/benchmarks.md); everything else
// is elementwise and bound by memory. The efficiencies default to values
// measured on H100 (docs/simulator.md) and can be overridden, or replaced by
// a measured profile (`linpar profile`).
#pragma once

#include <string>

#include "model/op_plan.h"
#include "sim/hardware.h"

namespace linpar::sim {

enum class OpClass { Matmul, Attention, Memory };

// By the op's name in the plan ("layers.3.token_mixer.qkvu_proj.forward").
OpClass classify_op(const std::string& name);

struct Efficiency {
  double matmul = 0.78;     // of the bf16 peak: measured 760-790 of 989 TFLOP/s on H100
  double attention = 0.037; // of the bf16 peak: lightning fwd+bwd ~36 TFLOP/s at 8K on H100
  double memory = 0.85;     // of HBM bandwidth: the measured copy rate, 2.97 of 3.35 TB/s
};

// Seconds of one op on `gpu`.
double op_seconds(const PlannedOp& op, const GpuSpec& gpu, const Efficiency& eff = {});

struct PlanCost {
  double seconds = 0;
  double matmul_seconds = 0, attention_seconds = 0, memory_seconds = 0;
  int64_t flops = 0;
};
// The whole plan, op after op (one stream, no overlap).
PlanCost plan_cost(const OpPlan& plan, const GpuSpec& gpu, const Efficiency& eff = {});

}  // namespace linpar::sim
