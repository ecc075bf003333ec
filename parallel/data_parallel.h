// Data parallelism over the DP group.
//
// GradientBuckets (DDP): gradients are all-reduced in buckets of about
// bucket_bytes, each started asynchronously as soon as backward has finished
// every gradient in it, so the reduction overlaps the rest of backward; finish()
// waits and averages. Traffic per step: Σ_buckets 2(n−1)/n · bucket bytes.
//
// Zero1 (ZeRO stage 1, Rajbhandari et al. 2020, laid out as Megatron-LM's
// distributed optimizer): the parameters' values and gradients are views of
// two flat vectors padded to a multiple of n; rank d owns elements
// [d·S, (d+1)·S). Gradients are reduce-scattered in place (each rank gets
// the average of its shard where its gradients were), AdamW state exists
// only for the shard and updates the values in place, and the updated
// shards are all-gathered in place into every rank's parameters: beyond
// the parameters and gradients themselves, ZeRO-1 holds m and v of one
// shard and the padding. Traffic per step: (n−1)·S·e reduce-scatter +
// (n−1)·S·e all-gather + one 8-byte all-reduce of the squared gradient norm.
#pragma once

#include <memory>
#include <vector>

#include "model/optimizer.h"
#include "model/parameters.h"
#include "model/tensor_parallel.h"
#include "parallel/communicator.h"

namespace linpar {

class GradientBuckets {
 public:
  // Makes every parameter's gradient a view of its bucket's buffer (values
  // kept): build the buckets before anything that keeps views of the
  // gradients (AdamW's segments).
  GradientBuckets(ParameterSet& params, Communicator& dp, int64_t bucket_bytes);
  ~GradientBuckets();

  // The model's GradientsReady hook for the last micro-batch of a step.
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
};

class Zero1 {
 public:
  // sum_model_parallel sums the squared gradient norm over the groups holding
  // other parts of the model (tensor and pipeline parallel). Makes every
  // parameter's value and gradient a view of the flat vectors (kept values):
  // build it before anything that keeps views of them.
  Zero1(ParameterSet& params, Communicator& dp, const AdamWConfig& config,
        SumOverModelParallel sum_model_parallel = {});

  // Reduce-scatters the local gradients; returns the global gradient norm
  // (before clipping) of the averaged gradient.
  double reduce_gradients();
  // Clips (when max_norm > 0 and norm exceeds it), updates this rank's shard,
  // all-gathers the updated parameters into every rank's ParameterSet.
  void step(double lr, double norm, double max_norm);

  AdamW& optimizer() { return *optimizer_; }
  const AdamW& optimizer() const { return *optimizer_; }
  // Which part of parameter `index` this rank owns: [begin, end) of its flat
  // elements (empty when begin == end), in the order of the optimizer segments.
  struct Slice {
    size_t parameter;
    int64_t begin, end;
  };
  const std::vector<Slice>& slices() const { return slices_; }
  // Every parameter's whole AdamW moments, all-gathered over the DP group
  // (checkpoints store per-parameter boxes, the same under any layout).
  void gather_moments(std::vector<Tensor>& m, std::vector<Tensor>& v);
  // The inverse: keep this rank's slices of whole per-parameter moments.
  void scatter_moments(const std::vector<Tensor>& m, const std::vector<Tensor>& v);
  int64_t shard_elements() const { return shard_; }

 private:
  ParameterSet& params_;
  Communicator& dp_;
  SumOverModelParallel sum_model_parallel_;
  int64_t total_ = 0, shard_ = 0;
  std::vector<int64_t> offsets_;  // flat offset of each parameter
  Tensor flat_grads_, flat_values_;  // the parameters' storage (their grad and value views)
  std::vector<Slice> slices_;
  std::unique_ptr<AdamW> optimizer_;
  void gather(const std::vector<Tensor>& segments, std::vector<Tensor>& whole);
};

}  // namespace linpar
