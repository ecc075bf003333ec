// The ops of a step after its micro-batches, as plan entries like the
// layers' (model/op_plan.h): the gradient reduction over the dp·sp ranks
// that hold a model shard (DDP's all-reduce, or ZeRO-1's flatten,
// reduce-scatter and all-gather of the values), the gradient norm's
// all-reduces, the AdamW update and CO2's outer all-reduce. What runs them:
// parallel/data_parallel.cpp, parallel/trainer.cpp (the norm),
// model/optimizer.cpp, co2/outer_loop.cpp. The simulator prices and
// schedules these ops (sim/step.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include "model/layout.h"
#include "model/op_plan.h"

namespace linpar {

struct StepTailShape {
  int64_t parameters = 0;         // this rank's, over all its pipeline chunks
  int64_t grad_reduce_bytes = 4;  // per gradient element reduced (f32, or 2 for bf16/fp16)
  int64_t element_bytes = 2;      // activations: 2 (bf16) adds a compute copy of each weight
};

// The step's tail, op by op in execution order; absent ops do not run in
// this layout. Every op is of kind Memory (its bytes) with its collectives.
struct StepTail {
  std::optional<PlannedOp> gradients;       // DDP's all-reduce of every gradient (in buckets)
  std::optional<PlannedOp> flatten;         // ZeRO-1: the gradients copied into one flat f32 vector
  std::optional<PlannedOp> reduce_scatter;  // ZeRO-1: its reduce-scatter
  PlannedOp norm;                           // the gradient norm's 8-byte all-reduces
  PlannedOp optimizer;                  // AdamW (ZeRO-1: its shard, the values copied flat first)
  std::optional<PlannedOp> all_gather;  // ZeRO-1: the updated values
  std::optional<PlannedOp>
      outer_all_reduce;  // CO2: the f32 parameters over the replicas, once per τ steps
};
StepTail plan_step_tail(const Layout& layout, const StepTailShape& shape);

}  // namespace linpar
