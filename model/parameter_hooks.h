// What data parallelism does around the model's use of its parameters, group
// by group (TransNormerLLM::parameter_groups: the embedding, each layer, the
// LM head). DDP's buckets reduce a group's gradients once backward has
// finished them; ZeRO-2 also makes the group's gradient buffer just before
// backward writes it and frees it after the reduce-scatter; ZeRO-3 gathers a
// group's weights before forward or backward reads them and frees them after
// (parallel/zero.h). The model calls these; it knows nothing of what they do.
#pragma once

namespace linpar {

class ParameterHooks {
 public:
  virtual ~ParameterHooks() = default;
  // Before forward (or a recomputation of it) reads group `group`'s weights;
  // `next`: the group forward reads after it (-1: none), to prefetch.
  virtual void before_forward(int group, int next) {}
  // After forward's last read of the group's weights.
  virtual void after_forward(int group) {}
  // Before backward reads the group's weights or writes its gradients
  // (idempotent: the tied embedding's head and input both call it);
  // `next` as above, in backward's order.
  virtual void before_backward(int group, int next) {}
  // Backward has finished the group's gradients of this micro-batch;
  // `last_micro_batch`: of the step's last one.
  virtual void after_backward(int group, bool last_micro_batch) {}
};

}  // namespace linpar
