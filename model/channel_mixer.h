// The channel mixer: SGLU, a gated linear unit with no activation
// (MODEL.md): SGLU(x) = ((x W_1) ⊙ (x W_2)) W_3; released names l1, l2, l3.
#pragma once

#include <string>

#include "model/config.h"
#include "model/parameters.h"
#include "model/tensor_parallel.h"

namespace linpar {

struct ChannelMixerCache {
  Tensor a1, a2;  // x W_1ᵀ, x W_2ᵀ: [B, N, F]
  Tensor gated;   // a1 ⊙ a2: [B, N, F]
};

class ChannelMixer {
 public:
  // Under tensor parallelism l1 and l2 are column-parallel (F/tp rows each)
  // and l3 row-parallel (F/tp columns); the output is summed over the group.
  ChannelMixer(const ModelConfig& config, int64_t layer, ParameterSet& params, uint64_t seed,
               DType dtype, const TensorParallel& tp = {});

  // x: [B, N, D] (already normalised) in the residual stream's layout (this
  // rank's [B, N/tp, D] under --tp-sp, gathered here) -> out: [B, N, D] (the
  // stream's layout); `out` undefined: the cache alone (recomputation)
  void forward(const Tensor& x, Tensor& out, ChannelMixerCache& cache) const;
  // d_out, x in the stream's layout -> dx (overwritten, the stream's layout);
  // parameter grads accumulate.
  void backward(const Tensor& d_out, const Tensor& x, const ChannelMixerCache& cache,
                Tensor& dx) const;

 private:
  std::string prefix_;
  TensorParallel tp_;
  int64_t width_, glu_dim_;  // glu_dim_: this rank's F/tp
  Parameter& l1_;
  Parameter& l2_;
  Parameter& l3_;
};

}  // namespace linpar
