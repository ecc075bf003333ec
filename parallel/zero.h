// ZeRO (Rajbhandari et al. 2020) over the data-parallel group, stages 1–3,
// laid out as Megatron-LM's distributed optimizer and PyTorch FSDP lay them
// out: the parameters are sharded group by group (TransNormerLLM's parameter
// groups: the embedding, each layer, the LM head). A group of s elements is
// padded to n·S (S = ⌈s/n⌉) and rank d owns its elements [d·S, (d+1)·S), so
// every group's collectives are even (NCCL's reduce-scatter and all-gather)
// and a group's shard is the same elements on every pipeline stage that
// holds a copy (the tied embedding's sum runs over shards).
//
//   stage 1: values and gradients are views of one n·S buffer per group;
//            after the step's last micro-batch each group's gradients are
//            reduce-scattered in place as soon as backward finishes them
//            (overlapping the rest of backward); AdamW's m and v exist for
//            the shard; the updated shards are all-gathered in place.
//   stage 2: as 1, but no gradient is kept whole: a group's n·S gradient
//            buffer exists from just before its backward to its
//            reduce-scatter, on every micro-batch, whose own block is added
//            into a kept shard of S (at most the group being written and
//            one in flight, plus the tied embedding through backward).
//   stage 3: as 2, and only the shard of the values is kept (with its compute
//            copy on the GPU): a group's weights are all-gathered before
//            forward or backward uses them (the next group's gather
//            prefetched, asynchronous) and freed after use; AdamW updates
//            the shard and writes its compute copy in the same pass.
//
// Traffic per step, e the gradient's and e_w the gathered weights' bytes:
// stage 1 Σ_g (n−1)·S_g·e reduce-scatter + (n−1)·S_g·e_values all-gather;
// stage 2 micro-batches × the reduce-scatters + the all-gather; stage 3
// micro-batches × (the reduce-scatters + two all-gathers of (n−1)·S_g·e_w,
// forward's and backward's), and no all-gather after the update.
#pragma once

#include <memory>
#include <vector>

#include "core/communicator.h"
#include "model/optimizer.h"
#include "model/parameter_hooks.h"
#include "model/parameters.h"

namespace linpar {

class ZeroOptimizer final : public ParameterHooks {
 public:
  // `groups` covers every parameter of `params` once, in the model's order
  // (TransNormerLLM::parameter_groups). sum_model_parallel sums the squared
  // gradient norm over the groups holding other parts of the model (TP, PP).
  // Makes the parameters' values and gradients views of the groups' buffers
  // (stage 3: frees them): build it before anything that keeps views of them.
  ZeroOptimizer(int stage, ParameterSet& params, std::vector<std::vector<Parameter*>> groups,
                Communicator& dp, const AdamWConfig& config,
                SumOverModelParallel sum_model_parallel = {});
  ~ZeroOptimizer() override;

  int stage() const { return stage_; }

  // The model's hooks (model/parameter_hooks.h).
  void before_forward(int group, int next) override;
  void after_forward(int group) override;
  void before_backward(int group, int next) override;
  void after_backward(int group, bool last_micro_batch) override;

  // The step's start: gradients (stage 1) or gradient shards (2, 3) zeroed.
  void zero_grad();
  // The reduction's end (pass Reduce: every reduce-scatter complete, the
  // shards averaged), the tied embedding's sum over the pipeline's ends
  // (`embedding`: its group, or null) and the global gradient norm (before
  // clipping), which it returns.
  double reduce_gradients(Communicator* embedding);
  // Clips (when max_norm > 0 and norm exceeds it) and updates this rank's
  // shard; stages 1 and 2 all-gather the updated values in place.
  void step(double lr, double norm, double max_norm);

  AdamW& optimizer() { return *optimizer_; }
  const AdamW& optimizer() const { return *optimizer_; }
  // Which part of parameter `parameter` (index in the set) this rank owns:
  // its flat elements [begin, end), in the order of the optimizer segments.
  struct Slice {
    size_t parameter;
    int64_t begin, end;
  };
  const std::vector<Slice>& slices() const { return slices_; }
  // Every parameter's whole AdamW moments, all-gathered (checkpoints store
  // per-parameter boxes, the same under any layout), and the inverse.
  void gather_moments(std::vector<Tensor>& m, std::vector<Tensor>& v);
  void scatter_moments(const std::vector<Tensor>& m, const std::vector<Tensor>& v);
  // Stage 3: every parameter's whole value in `value` (all-gathered), for a
  // checkpoint to write or read, and back to shards (from what `value`
  // holds then; the compute copies rewritten). No-ops below stage 3.
  void unshard();
  void reshard();

  // Elements of this rank's shards over all groups (Σ S_g).
  int64_t shard_elements() const;

 private:
  struct Group;
  void gather(Group& g);              // starts the weights' all-gather (stage 3)
  void materialize(Group& g);         // the weights in the parameters, gathered
  void release(Group& g);             // the weights freed (stage 3)
  void make_gradients(Group& g);      // a zeroed gradient buffer, the parameters' views
  void complete_reduction(Group& g);  // waits for its reduce-scatter (stages 2, 3: adds the block)
  Tensor own(const Tensor& whole, const Group& g) const;  // this rank's block of n·S

  int stage_;
  ParameterSet& params_;
  Communicator& dp_;
  SumOverModelParallel sum_model_parallel_;
  bool compute_copies_ = false;  // the weights forward reads are Parameter::compute
  DType value_dtype_, grad_dtype_, compute_dtype_;
  Device device_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<Slice> slices_;
  std::vector<size_t> slice_group_;    // each slice's group
  std::vector<size_t> slice_member_;   // and its place among the group's parameters
  std::vector<Tensor> segment_grads_;  // each slice's gradient shard (the norm's)
  std::unique_ptr<AdamW> optimizer_;
};

}  // namespace linpar
