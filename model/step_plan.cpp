#include "model/step_plan.h"

namespace linpar {

StepTail plan_step_tail(const Layout& l, const StepTailShape& s) {
  StepTail tail;
  OpPlan plan;  // where the ops are built, then moved into the tail
  const OpSite at{&plan, "", kHeadLayer, Pass::Backward};
  auto take = [&] { return plan.mutable_ops().back(); };
  const int64_t P = s.parameters;
  // The ranks that average a shard's gradients: dp·sp, or with CO2 the SP
  // ranks of one replica (the replicas meet in the outer loop).
  const int64_t ranks = l.co2_tau > 0 ? l.sp : static_cast<int64_t>(l.dp) * l.sp;
  const bool zero = l.zero != 0 && ranks > 1;
  const CommGroup gradients = l.co2_tau > 0 ? CommGroup::Sp : CommGroup::DpSp;
  // ZeRO-1 pads the flat vector to a multiple of the ranks (Zero1::shard_).
  const int64_t shard = (P + ranks - 1) / ranks;
  if (ranks > 1 && !zero) {
    // DDP: every gradient all-reduced once (in buckets during the last
    // micro-batch's backward, sim/step.cpp; parallel/data_parallel.cpp).
    at.memory("dp.gradients", 0, 0, 0,
              {{CollectiveKind::AllReduce, gradients, P * s.grad_reduce_bytes}});
    tail.gradients = take();
  }
  if (zero) {
    // ZeRO-1 after the whole backward (parallel/data_parallel.h): the f32
    // gradients copied into one flat vector (read + write), its
    // reduce-scatter (the collective counts its output block).
    at.memory("zero.flatten_gradients", 0, 4 * P, 4 * P);
    tail.flatten = take();
    at.memory("zero.reduce_scatter", 0, 0, 0,
              {{CollectiveKind::ReduceScatter, gradients, shard * s.grad_reduce_bytes}});
    tail.reduce_scatter = take();
  }
  // The gradient norm for clipping: the sum of squares, 8 bytes, summed over
  // the groups that hold other parts of the model and, with ZeRO-1, the shards.
  std::vector<PlannedCollective> norm;
  if (l.tp > 1) norm.push_back({CollectiveKind::AllReduce, CommGroup::Tp, 8});
  if (l.pp > 1) norm.push_back({CollectiveKind::AllReduce, CommGroup::Pp, 8});
  if (zero) norm.push_back({CollectiveKind::AllReduce, gradients, 8});
  at.memory("grad_norm", 0, 0, 0, std::move(norm));
  tail.norm = take();
  // AdamW over this rank's parameters (1/ranks of them with ZeRO-1): the f32
  // value, gradient, m and v read, the value, m and v written, and the bf16
  // compute copy (bf16): 30 bytes a parameter (model/optimizer.cpp); ZeRO-1 first
  // copies the values into the flat vector (read + write).
  const int64_t updated = zero ? shard : P;
  const int64_t copy = s.element_bytes < 4 ? 2 : 0;
  at.memory("optimizer", 0, 16 * updated + (zero ? 4 * P : 0),
            (12 + copy) * updated + (zero ? 4 * P : 0));
  tail.optimizer = take();
  if (zero) {
    at.memory("zero.all_gather_values", 0, 0, 0,
              {{CollectiveKind::AllGather, gradients, shard * 4}});
    tail.all_gather = take();
  }
  if (l.co2_tau > 0 && l.dp > 1) {
    // The outer all-reduce of the f32 parameters, once per τ steps.
    at.memory("co2.outer_all_reduce", 0, 0, 0, {{CollectiveKind::AllReduce, CommGroup::Dp, P * 4}});
    tail.outer_all_reduce = take();
  }
  return tail;
}

}  // namespace linpar
