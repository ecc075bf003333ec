// The step's update after its micro-batches: the gradients' reduction (DDP's
// buckets or ZeRO-1's reduce-scatter), the tied embedding's sum over the
// pipeline's ends, the gradient norm, the optimizer with clipping folded in,
// and the refresh of the bf16 compute copies. One code path for the run and
// the plan: the trainer calls it on its parameters (parallel/trainer.cpp);
// plan_step_tail (parallel/step_plan.h) calls it on meta parameters over
// planning communicators. Each phase is one op of the step's tail (an op
// scope of pass Reduce or Update, core/op_stats.h), which the simulator
// prices and schedules and the op-plan test compares with a run.
#pragma once

#include <memory>

#include "core/communicator.h"
#include "model/optimizer.h"
#include "model/parameters.h"
#include "parallel/data_parallel.h"
#include "parallel/zero.h"

namespace linpar {

// The objects that reduce and update a rank's parameters, as the trainer
// makes them: ZeRO's stage `zero` over `gradients` (zero ≥ 1, in `groups`:
// the model's parameter groups), else DDP's buckets over it (more than one
// rank) and AdamW. `gradients`: the dp·sp ranks of a
// shard, or under CO2 a replica's SP ranks (Trainer's constructor; the plan,
// parallel/step_plan.cpp). The buckets come first: they turn the gradients
// into views of their buffers.
struct StepOptimizer {
  std::unique_ptr<GradientBuckets> buckets;
  std::unique_ptr<ZeroOptimizer> zero;
  std::unique_ptr<AdamW> adamw;
  // The model's parameter hooks: ZeRO's or the buckets' (or null).
  ParameterHooks* hooks() const;
};
StepOptimizer make_step_optimizer(ParameterSet& params,
                                  const std::vector<std::vector<Parameter*>>& groups,
                                  Communicator& gradients, int zero, const AdamWConfig& config,
                                  const SumOverModelParallel& sum, int64_t bucket_bytes);

struct StepUpdate {
  ParameterSet* params = nullptr;
  GradientBuckets* buckets = nullptr;       // DDP's (under CO2 the SP ranks'), or null
  ZeroOptimizer* zero = nullptr;            // ZeRO (then no buckets and no optimizer), or null
  AdamW* optimizer = nullptr;               // without ZeRO
  SumOverModelParallel sum_model_parallel;  // the norm's sum over TP and PP
  Communicator* embedding = nullptr;  // the tied embedding's group, or null: no tied copy here

  // Reduces the gradients, takes the norm, clips and updates (lr, clipping
  // at max_norm ≤ 0: off); returns the norm before clipping.
  double update(double lr, double max_norm) const;
  // The compute copies rewritten from the values, unless the optimizer wrote
  // them in its own pass and nothing changed the values since (ZeRO-1's and
  // -2's all-gather does; `values_changed`: an outer loop did). ZeRO-3's
  // optimizer writes its shards' copies, which the next gather reads.
  void refresh_compute(bool values_changed) const;
};

}  // namespace linpar
