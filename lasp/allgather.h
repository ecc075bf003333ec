// The all-gather baseline (`--sp-kind allgather`): every rank gathers K and V
// of the whole sequence from the SP group and computes its own queries'
// outputs against all of it. For linear attention "against all of it" means
// the state of every earlier chunk, KV_{r−1} = Σ_{s<r} λ^{C(r−1−s)} S_s with
// S_s formed from the gathered K_s, V_s, then lightning attention of the local
// chunk with that state. Backward: the local backward gives dQ, the local
// chunk's dK, dV and dKV_{r−1}; dKV_{r−1} flows into the gathered K_s, V_s of
// every earlier chunk, and a reduce-scatter sums those contributions onto the
// ranks that own the chunks. The gathered K and V are kept for backward (the
// memory cost of the method: the whole sequence's K and V on every rank).
// Traffic per layer and micro-batch: all-gather of K and V forward,
// reduce-scatter of dK and dV backward, (T−1)·B·H·C·(d_k+d_v) elements per
// rank each way: linear in the sequence length.
#pragma once

#include "core/communicator.h"
#include "model/sequence_parallel.h"

namespace linpar::lasp {

class AllGatherAttention final : public SequenceAttention {
 public:
  explicit AllGatherAttention(Communicator& sp) : sp_(sp) {}
  std::string kind() const override { return "allgather"; }
  void forward(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<double>& slopes,
               int64_t block, Tensor& o, AttentionCache& cache) const override;
  void recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                 const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                 Tensor& o) const override;
  bool keeps_cache_under_full_recompute() const override { return false; }
  void backward(const Tensor& q, const Tensor& k, const Tensor& v,
                const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv) const override;

 private:
  Communicator& sp_;
};

}  // namespace linpar::lasp
