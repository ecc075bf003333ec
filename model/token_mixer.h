// The token mixer: gated linear attention (GLA) with per-head exponential decay
// and optional LRPE, computed by lightning attention (MODEL.md, "GLA"):
//   q, k, v, u = split4(x W_qkvu);  q, k = SiLU(q), SiLU(k);  (LRPE on q, k)
//   a = LinearAttentionWithDecay(q, k, v);  o = SRMSNorm(concat_heads(a))
//   out = (u ⊙ o) W_o
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"
#include "model/sequence_parallel.h"
#include "model/tensor_parallel.h"

namespace linpar {

// Activations saved by forward for backward.
struct TokenMixerCache {
  Tensor qkvu;            // [B, N, 4D] (also the raw q and k that SiLU's backward reads)
  Tensor q, k, v;         // [B, H, N, d] (q, k after SiLU)
  Tensor q_rot, k_rot;    // [B, H, N, 2d] after LRPE (undefined without LRPE)
  Tensor u;               // [B, N, D]
  Tensor attention_norm;  // o = SRMSNorm(a): [B, N, D]
  Tensor attention_rstd;  // [B·N]
  // Selective recomputation keeps the output norm's row sums of squares
  // (summed over TP) in place of attention_rstd: rebuilding the norm's
  // values and rstd from the recomputed attention then needs no all-reduce.
  Tensor attention_sums;  // [B·N]
  Tensor gated;           // u ⊙ o: [B, N, D]
  AttentionCache attention;  // what the sequence-parallel strategy keeps for backward
};

class TokenMixer {
 public:
  // Under tensor parallelism this rank holds H/tp heads: its rows of q, k, v
  // and u in qkvu_proj (column-parallel) and its columns of out_proj
  // (row-parallel).
  // Under sequence parallelism x holds this rank's chunk of every sample and
  // the attention runs through sp.attention.
  TokenMixer(const ModelConfig& config, int64_t layer, ParameterSet& params, uint64_t seed,
             DType dtype, const TensorParallel& tp = {}, const SequenceParallel& sp = {});

  // x: [B, N, D] (already normalised) in the residual stream's layout:
  // replicated over TP, or this rank's sequence shard [B, N/tp, D] under
  // --tp-sp, gathered here -> out: [B, N, D] (summed over the TP group; its
  // shard under --tp-sp).
  // keep_core false (selective recomputation, model/recompute.h): the cache
  // keeps qkvu, gated, the norm's row sums and the strategy's cache only;
  // recompute_core rebuilds the rest before backward. `recomputing` (full
  // recomputation rebuilding the layer): the strategy's cache forward kept,
  // from which the attention is recomputed without communicating
  // (SequenceAttention::recompute) and which the new cache shares.
  void forward(const Tensor& x, Tensor& out, TokenMixerCache& cache, bool keep_core = true,
               const AttentionCache* recomputing = nullptr) const;
  // What forward without keep_core dropped, rebuilt from qkvu, the row sums
  // and the strategy's cache: q, k, v, u (with LRPE q_rot, k_rot), the
  // attention and its norm. Ops of the current pass (Pass::Recompute).
  void recompute_core(TokenMixerCache& cache) const;
  // d_out, x in the stream's layout -> dx: [B, N, D] (overwritten, the
  // stream's layout); parameter grads accumulate.
  void backward(const Tensor& d_out, const Tensor& x, const TokenMixerCache& cache,
                Tensor& dx) const;

 private:
  std::string prefix_;
  TensorParallel tp_;
  SequenceParallel sp_;
  int64_t n_heads_, head_dim_, width_, local_width_, attention_block_;
  double norm_eps_;
  bool use_lrpe_;
  std::vector<double> slopes_;
  // q, k, v, u from qkvu (split_qkvu.forward) and with LRPE q_rot, k_rot.
  void split_heads(TokenMixerCache& cache) const;
  // The attention of q, k (rotated with LRPE), v into `attention` [B, H, N, d]:
  // the strategy's forward, or its recompute from `recomputing`.
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& attention,
              AttentionCache& cache, const AttentionCache* recomputing) const;
  Parameter& qkvu_proj_;
  Parameter& out_proj_;
  Parameter* lrpe_theta_ = nullptr;
};

}  // namespace linpar
