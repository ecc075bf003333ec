// Time of the ops of the shared op plan (model/op_plan.h) on one GPU, by a
// roofline: an op takes the longer of its FLOPs at the GPU's peak times an
// efficiency and its bytes at the memory bandwidth times an efficiency.
// Matrix products (projections, SGLU and MLP GEMMs, LM head, the unfused
// softmax core's Q·Kᵀ and P·V) use the bf16 tensor-core peak; lightning
// attention and the KV-state ops their own efficiency (the kernels run far
// below the GEMM peak: docs/benchmarks.md); the softmax transformers' fused
// (FlashAttention) core another; everything else is elementwise and bound by
// memory. The efficiencies default to values measured on H100
// (docs/simulator.md) and can be overridden, or replaced by a measured
// profile (`linpar profile`).
#pragma once

#include <string>

#include "model/op_plan.h"
#include "sim/hardware.h"

namespace linpar::sim {

// An op's cost class is its plan kind (model/op_plan.h): Matmul, Attention
// (lightning attention and the LASP/SP strategies' ops), SoftmaxAttention
// (the softmax transformers' fused core), Memory.
using OpClass = OpKind;
// "matmul", "attention", "memory", "softmax_attention": the traces' op category.
inline const char* op_class_name(OpClass c) { return op_kind_name(c); }

struct Efficiency {
  double matmul = 0.78;     // of the bf16 peak: measured 760-790 of 989 TFLOP/s on H100
  double attention = 0.037; // of the bf16 peak: lightning fwd+bwd ~36 TFLOP/s at 8K on H100
  double memory = 0.85;     // of HBM bandwidth: the measured copy rate, 2.97 of 3.35 TB/s
  // Of HBM bandwidth, for the plan's memory-bound ops (norms, activations,
  // residuals, softmax, cross-entropy, layout copies): what an element-wise
  // kernel moves, not a copy. linpar profile's element-wise product on an
  // H200 (bf16, 138 MB): 3,320 of 4,800 GB/s (docs/data/
  // profile-h200-tnl-385m-sizes.json, where a copy reached 3,975); a profile
  // with that rate prices the one-GPU runs within 5% (docs/validation.md).
  // Products' and attention kernels' byte bounds, the optimizer and the
  // collectives' copies stay at `memory`.
  double elementwise = 0.69;
  // The fused (FlashAttention) core, whose rate moves with the shape: per
  // kernel (forward; backward) the plan's FLOPs take
  //   t = overhead + F / (peak · share(d)) · (1 + half_length / N)
  //       + [dropout] scores · dropout_ops / f32 peak,
  // share(d) by head size from a table measured on an H200 (op_costs.cpp;
  // torch SDPA's kernels, fitted by scripts/fit_sdpa.py to
  // docs/data/sdpa-torch-h200.json, and within 7% on 13 shapes the fit did
  // not see: docs/validation.md). `softmax_attention` is the table's share
  // for heads of 128 over long sequences, forward and backward together
  // (with the plan's FLOPs: causal, half of 4·B·H·N²·d forward, 2.5× that
  // backward); setting it scales the whole table. An op without a shape
  // (model/op_plan.h, CoreShape) takes it alone.
  double softmax_attention = 0.615;
  double softmax_attention_half_length = 550;     // tokens: per query tile's fixed work
  double softmax_attention_forward_us = 18.7;     // fixed: launch, the last wave
  double softmax_attention_backward_us = 68.4;    // fixed: its three kernels
  // Dropout inside the kernel: its random numbers are drawn on the CUDA
  // cores, forward and again backward; f32 operations per score at the
  // GPU's non-tensor f32 peak.
  double softmax_attention_dropout_forward_ops = 69.6;
  double softmax_attention_dropout_backward_ops = 43.3;
  // A matrix product's fixed cost beside its FLOPs at `matmul` (launch,
  // partly filled waves): small products run far below the peak fraction.
  // linpar profile's 60 bf16 GEMMs of tnl-385m on an H200 (4.3 to 2,150
  // GFLOP; docs/data/profile-h200-tnl-385m-sizes.json) fit
  // t = 12.75 µs + FLOPs / (0.78 · peak) within −10% … +22% each (median
  // |error| 5%), where 0.78 alone is off by −71% … +22%.
  double matmul_overhead_us = 12.75;

  bool operator==(const Efficiency&) const = default;
};

// Seconds of one op on `gpu`: the roofline, max(FLOPs at the class's
// fraction of the peak, bytes at `memory` of the HBM bandwidth), plus the
// fixed cost for matrix products; the fused softmax core by its curve
// (Efficiency::softmax_attention).
double op_seconds(const PlannedOp& op, const GpuSpec& gpu, const Efficiency& eff = {});

// The fused softmax core's share of the bf16 peak for one direction at head
// size `head_dim` over long sequences: the head padded to a multiple of 32,
// the table's share there (interpolated linearly in d, held at its ends)
// times d / padded; scaled by `softmax_attention`, at most 1.
double softmax_core_share(int64_t head_dim, bool backward, const Efficiency& eff = {});

struct PlanCost {
  double seconds = 0;
  double matmul_seconds = 0, attention_seconds = 0, memory_seconds = 0;  // attention: both kinds
  int64_t flops = 0;
};
// The whole plan, op after op (one stream, no overlap).
PlanCost plan_cost(const OpPlan& plan, const GpuSpec& gpu, const Efficiency& eff = {});

}  // namespace linpar::sim
