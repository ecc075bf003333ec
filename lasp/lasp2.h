// LASP-2 (Sun et al., arXiv 2502.07563, Algorithms 1 and 2): the chain of
// LASP becomes one collective. Forward on rank r: compute the chunk's state
// contribution S_r first, start an all-gather of every rank's S, compute the
// intra-chunk output while it runs, then form the prefix locally,
//   KV_{r−1} = Σ_{s<r} λ^{C(r−1−s)} S_s,
// and add O_inter = Λ_C Q_r KV_{r−1}. Backward: each rank forms
// G_r = (Λ_C Q_r)ᵀ dO_r (the gradient reaching KV_{r−1}), one all-gather of
// every G, and the suffix dKV_r = Σ_{t>r} λ^{C(t−1−r)} G_t feeds dK and dV.
// Traffic per layer and micro-batch: one all-gather of B·H·d_k·d_v elements per
// rank each way, independent of the sequence length; no serial hops.
#pragma once

#include "core/communicator.h"
#include "model/sequence_parallel.h"

namespace linpar::lasp {

class Lasp2 final : public SequenceAttention {
 public:
  explicit Lasp2(Communicator& sp) : sp_(sp) {}
  std::string kind() const override { return "lasp2"; }
  void forward(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<double>& slopes,
               int64_t block, Tensor& o, AttentionCache& cache) const override;
  void recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                 const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                 Tensor& o) const override;
  bool keeps_cache_under_full_recompute() const override { return true; }
  void backward(const Tensor& q, const Tensor& k, const Tensor& v,
                const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv) const override;

 private:
  Communicator& sp_;
};

}  // namespace linpar::lasp
