// DeepSpeed-Ulysses (Jacobs et al., arXiv 2309.14509) as the SP baseline
// `--sp-kind ulysses`: an all-to-all turns Q, K and V from sequence-sharded
// (all H heads, C = N/T tokens) into head-sharded (H/T heads, all N tokens);
// each rank runs lightning attention over the whole sequence for its heads;
// a fourth all-to-all returns the output to sequence-sharded. Backward: dO
// forward through the same all-to-all, the local backward, and dQ, dK, dV back.
// Needs the (TP-local) heads divisible by T. The head-sharded Q, K, V are kept
// for backward. Traffic per layer and micro-batch: 4 all-to-alls each way of
// B·H·C·d elements per rank ((T−1)/T of it leaves the rank): linear in N.
#pragma once

#include "core/communicator.h"
#include "model/sequence_parallel.h"

namespace linpar::lasp {

class UlyssesAttention final : public SequenceAttention {
 public:
  explicit UlyssesAttention(Communicator& sp) : sp_(sp) {}
  std::string kind() const override { return "ulysses"; }
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
  // [B, H, C, d] sequence-sharded -> [B, H/T, T·C, d] head-sharded, and back.
  Tensor to_heads(const Tensor& x) const;
  void to_sequence(const Tensor& x, Tensor& out) const;
  std::vector<double> my_slopes(const std::vector<double>& slopes) const;
  Communicator& sp_;
};

}  // namespace linpar::lasp
