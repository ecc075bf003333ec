// The op plan of a micro-batch, built by running the model: TransNormerLLM's
// own forward and backward run on meta tensors (Device::Meta: shapes, no
// data) over planning communicators, and an OpRecorder takes down each op
// scope they open — its name, layer and pass, the kind of kernel that ran,
// the FLOPs and bytes the public ops count from those shapes, the
// collectives the communicators count, a product's shape and weight, a
// linear-attention kernel's key width and where the LASP ring posts and
// waits for its receive. The same code that trains is the code that plans,
// so the two cannot diverge (tests/parallel/op_plan_run_test.cpp still
// compares the plan with a real run op by op: that is where the meta path
// of each public op is checked against its kernels).
#pragma once

#include "model/config.h"
#include "model/op_plan.h"
#include "model/recompute.h"
#include "model/sequence_parallel.h"
#include "model/tensor_parallel.h"

namespace linpar {

// The SP shard a plan is of: the strategy, this rank of the SP group and the
// group's size, and what builds the strategy (lasp/'s factory: model/ does
// not depend on lasp/). size 1: the whole sequence on this rank.
struct SequencePlan {
  SequenceParallelKind kind = SequenceParallelKind::Lasp;
  int rank = 0;
  int size = 1;
  SequenceAttentionFactory factory;
};

// One micro-batch's forward and backward on one rank of the given shard, in
// execution order. tp: its rank, size and --tp-sp (its group is not used:
// the plan runs over a planning one). shape.length: this rank's tokens per
// sample; shape.element_bytes: the activations' type (2 bf16 with f32
// masters, 4 f32, 8 f64). recompute: what the model keeps and recomputes
// (TransNormerLLM::set_recompute): the ops a layer's backward runs again
// first are in the plan, of pass Recompute.
OpPlan plan_model(const ModelConfig& config, const TensorParallel& tp, const SequencePlan& sp,
                  const StepShape& shape, Recompute recompute = Recompute::None);
// The same, running every layer (plan_model runs two and repeats layer 1's
// ops for the layers built like it): what plan_model is tested against.
OpPlan plan_every_layer(const ModelConfig& config, const TensorParallel& tp, const SequencePlan& sp,
                        const StepShape& shape, Recompute recompute = Recompute::None);

// What one micro-batch's forward and backward allocate on this rank, as the
// model's code on meta tensors allocates it (core/tensor.h, MetaMemory):
// the cache forward leaves for backward (the batch's tokens and targets,
// the layers' and the head's caches, an SP strategy's saved tensors and
// LASP's state still being sent), and the most allocated beyond it at once
// during forward and during backward. Kernel workspaces the GPU path alone
// allocates (the tensor-core attention's chunk states) are not in it.
struct PlannedMemory {
  int64_t cache = 0;
  int64_t forward_peak = 0;
  int64_t backward_peak = 0;
};
PlannedMemory plan_memory(const ModelConfig& config, const TensorParallel& tp,
                          const SequencePlan& sp, const StepShape& shape,
                          Recompute recompute = Recompute::None);

}  // namespace linpar
