// One training step of a layout on a cluster, as a discrete-event schedule
// (sim/engine.h) built from the shared op plan: per pipeline stage a compute
// and a communication stream; forward and backward of every micro-batch in
// the pipeline schedule's order, with the TP collectives the plan carries on
// the critical path, activations and their gradients sent between stages,
// the DP gradient reduction in per-layer buckets overlapping the last
// micro-batch's backward (ZeRO-1: reduce-scatter, the update of 1/dp, then
// the all-gather of the values), and the optimizer pass. The DP and TP ranks
// of a stage are identical, so one rank per stage is simulated.
// Sequence parallelism, recomputation and CO2 are not built yet (issue 7).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/pipeline_schedule.h"
#include "sim/engine.h"
#include "sim/hardware.h"
#include "sim/op_costs.h"

namespace linpar::sim {

struct SimLayout {
  int dp = 1, tp = 1, pp = 1;
  bool tp_sp = false;
  int zero = 0;
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  int64_t seq_len = 2048;
  int64_t micro_batch = 1;
  int64_t global_batch = 1;  // samples per step, a multiple of dp · micro_batch
  int64_t element_bytes = 2;  // bf16 activations; weights, grads and AdamW f32
};

struct StepPrediction {
  double step_seconds = 0;
  double tokens_per_gpu_per_s = 0;
  double mfu = 0;               // model FLOPs (matrix products + attention) / time / bf16 peak
  double compute_seconds = 0;   // busiest stage's compute stream
  double bubble_seconds = 0;    // that stage's compute stream idle within the step
  int64_t model_flops_per_gpu = 0;
  int64_t comm_bytes_per_gpu = 0;  // wire bytes a GPU sends in the step (TP, PP, DP)
  Schedule schedule{1};
};

// UserError for layouts that do not fit the cluster or the model.
StepPrediction simulate_step(const ModelConfig& model, const ClusterSpec& cluster,
                             const SimLayout& layout, const Efficiency& efficiency = {});

// Parameters a pipeline stage's rank holds (its TP shard).
int64_t stage_parameters(const ModelConfig& model, int stage, int stages, int tp);

}  // namespace linpar::sim
