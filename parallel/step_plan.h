// The ops of a step after its micro-batches, as plan entries like the
// layers' (model/op_plan.h), made the way the layers' are: the trainer's own
// update code (parallel/step_update.h: DDP's gradient buckets or ZeRO-1, the
// tied embedding's sum, the gradient norm, AdamW, the compute copies' refresh)
// run on meta parameters over planning communicators, each phase recorded as
// one op. The simulator prices and schedules these ops (sim/step.cpp).
//
// The parameters stand in as one tensor of the rank's count (and the tied
// embedding as its own): every phase's bytes and collectives are sums over
// the parameters, so the plan's ops equal the run's, whose per-parameter
// kernels the op scopes sum (tests/parallel/op_plan_run_test.cpp); only
// DDP's bucket count differs, which the plan's one all-reduce stands for.
//
// CO2's outer reduction is stated, not run: its loop (co2/outer_loop.cpp)
// works over MPI and a background thread, which a plan cannot run; the run
// records it as an op (Co2OuterLoop::start_outer_reduction) and the op-plan
// test compares the two at a round's end. The round's arithmetic on the
// host, the sharded outer state's all-gather and norm are not planned
// (issue 24: the GPU path and its pricing).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/layout.h"
#include "model/op_plan.h"

namespace linpar {

struct StepTailShape {
  int64_t parameters = 0;  // this rank's, over all its pipeline chunks
  // Under ZeRO: the sizes of the rank's parameter groups in the model's
  // order (TransNormerLLM::parameter_groups: the embedding, each layer, the
  // head), which ZeRO shards one by one; summing to `parameters`. Empty
  // without ZeRO (DDP's buckets are one reduction).
  std::vector<int64_t> groups;
  // The first group (the embedding) is also the head's (tied on one stage):
  // ZeRO-3 gathers it for both in forward.
  bool embedding_at_both_ends = false;
  int64_t tied_embedding =
      0;  // of them, a tied embedding's copy (first and last stage under PP), or 0
  bool last_stage = false;        // that copy is the last stage's (the norm leaves it out)
  int64_t grad_reduce_bytes = 4;  // per gradient element: 4 (f32), 2 (bf16/fp16), 8 (the CPU's f64)
  int64_t element_bytes = 2;      // activations: 2 (bf16) adds a compute copy of each weight
  // The gradients' average made inside the collective (NCCL's ncclAvg, the
  // GPUs), not by a pass after it (MPI, the CPU).
  bool averages_inside = true;
  // This rank's place in the group that averages its gradients (which
  // ZeRO-1 shard it updates); the simulator plans rank 0's.
  int rank = 0;
  bool operator==(const StepTailShape&) const = default;
};

// The step's tail op by op in execution order: pass Reduce (the gradient
// reduction DDP overlaps with the last backward; under ZeRO-2 and -3 also
// the collectives their hooks make during every micro-batch: the trainer's
// hooks run on the plan's groups in forward's and backward's order, and
// what they send is the Reduce op's), then Update, then Outer
// (CO2's round end, once per τ steps). Ops that do not run in this layout are
// absent.
struct StepTail {
  std::vector<PlannedOp> ops;
};
// Planned once per layout and shape on each thread and kept (the layout
// search asks for the same few many times).
std::shared_ptr<const StepTail> plan_step_tail(const Layout& layout, const StepTailShape& shape);

}  // namespace linpar
