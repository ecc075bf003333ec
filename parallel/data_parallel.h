// Data parallelism over the DP group.
//
// GradientBuckets (DDP): gradients are all-reduced in buckets of about
// bucket_bytes, each started asynchronously as soon as backward has finished
// every gradient in it, so the reduction overlaps the rest of backward; finish()
// waits and averages. Traffic per step: Σ_buckets 2(n−1)/n · bucket bytes.
//
// ZeRO's stages: parallel/zero.h.
#pragma once

#include <memory>
#include <vector>

#include "model/optimizer.h"
#include "model/parameter_hooks.h"
#include "model/parameters.h"
#include "model/tensor_parallel.h"
#include "parallel/communicator.h"

namespace linpar {

class GradientBuckets final : public ParameterHooks {
 public:
  // Makes every parameter's gradient a view of its bucket's buffer (values
  // kept): build the buckets before anything that keeps views of the
  // gradients (AdamW's segments). `groups`: the model's parameter groups
  // (TransNormerLLM::parameter_groups), which after_backward names.
  GradientBuckets(ParameterSet& params, Communicator& dp, int64_t bucket_bytes,
                  std::vector<std::vector<Parameter*>> groups = {});
  ~GradientBuckets() override;

  // The model's hook: the step's last micro-batch has finished a group's gradients.
  void after_backward(int group, bool last_micro_batch) override;
  // These parameters' gradients are final.
  void ready(const std::vector<Parameter*>& params);
  // Starts any bucket not started yet, waits for all, writes the averages back.
  void finish();
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<Parameter*> params;
    Tensor flat;
    size_t pending = 0;
    std::unique_ptr<CommRequest> request;
  };
  void start(Bucket& bucket);

  Communicator& dp_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter index -> bucket
  ParameterSet& params_;
  std::vector<std::vector<Parameter*>> groups_;
};

}  // namespace linpar
