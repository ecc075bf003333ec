// AdamW (Loshchilov & Hutter, decoupled weight decay), the learning-rate
// schedule (linear warmup, cosine decay to a floor) and global-norm clipping.
#pragma once

#include <cstdint>
#include <functional>

#include "model/parameters.h"
#include "model/tensor_parallel.h"

namespace linpar {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  // --optimizer sgd: p −= lr·(g + wd·p), the moments unused. An update linear
  // in the gradient, under which averaging parameters after one local step is
  // synchronous DP exactly (CO2's τ = 1 limit); AdamW is the default.
  bool plain_sgd = false;
};

struct LrSchedule {
  double max_lr = 3e-4;
  double min_lr_ratio = 0.1;  // cosine decays to max_lr · min_lr_ratio
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // lr for step (0-based): linear warmup over warmup_steps to max_lr, then
  // cosine to the floor at total_steps.
  double at(int64_t step) const;
};

// A run of elements AdamW updates together: views of a parameter's values and
// gradients (a whole parameter, or the part of it inside a ZeRO shard).
struct AdamWSegment {
  Tensor value;  // 1-d view, updated in place
  Tensor grad;   // 1-d view, same length
  bool weight_decay = true;
  // Mixed precision on the GPU: the parameter's bf16 copy (1-d view), which
  // the update rewrites in the same pass; undefined when there is none.
  Tensor compute;
};

class AdamW {
 public:
  AdamW(const AdamWConfig& config, ParameterSet& params);  // one segment per parameter
  AdamW(const AdamWConfig& config, std::vector<AdamWSegment> segments);

  // One update with the gradients currently in params (f32/f64 CPU):
  //   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t)
  //   p −= lr · (m̂ / (√v̂ + ε) + wd · p)     (wd only for parameters that decay)
  // grad_scale multiplies every gradient as it is read (global-norm clipping
  // folded into the update: one pass over the gradients fewer), exactly as
  // scaling the gradients first would (the same f32 product).
  void step(double lr, double grad_scale = 1.0);

  int64_t steps_taken() const { return step_; }
  // Whether step() also rewrites every parameter's compute copy (so the
  // caller need not refresh them).
  bool writes_compute_copies() const { return writes_compute_; }
  void set_steps_taken(int64_t step) { step_ = step; }
  // Moment tensors, one per segment in order (checkpoints save and restore them).
  std::vector<Tensor>& first_moments() { return m_; }
  std::vector<Tensor>& second_moments() { return v_; }
  const std::vector<Tensor>& first_moments() const { return m_; }
  const std::vector<Tensor>& second_moments() const { return v_; }

 private:
  AdamWConfig config_;
  std::vector<AdamWSegment> segments_;
  std::vector<Tensor> m_, v_;
  int64_t step_ = 0;
  bool writes_compute_ = false;
};

// √(Σ g²) over every parameter's gradient. Under tensor parallelism every
// parameter is sharded (none is replicated), so the squares are summed over
// the TP group.
double global_grad_norm(const ParameterSet& params, const TensorParallel& tp = {});
// The same with any reduction of the squared norm over the model-parallel
// groups that hold disjoint parts of the model (tensor and pipeline).
using SumOverModelParallel = std::function<void(Tensor&)>;
double global_grad_norm(const ParameterSet& params, const SumOverModelParallel& sum);
// Scales every gradient by max_norm / norm when norm > max_norm (max_norm ≤ 0
// disables clipping). Returns the norm before clipping.
double clip_grad_norm(ParameterSet& params, double max_norm, const TensorParallel& tp = {});
double clip_grad_norm(ParameterSet& params, double max_norm, const SumOverModelParallel& sum);
// The factor clipping applies for a norm: max_norm / (norm + 1e-6) above
// max_norm, else 1 (max_norm ≤ 0: 1).
double clip_factor(double norm, double max_norm);

}  // namespace linpar
