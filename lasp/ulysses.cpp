#include "lasp/ulysses.h"

#include "core/error.h"
#include "core/op_stats.h"
#include "core/ops/chunk_layout.h"
#include "core/ops/dispatch.h"
#include "core/ops/lightning_attention.h"

namespace linpar::lasp {

Tensor UlyssesAttention::to_heads(const Tensor& x) const {
  const int64_t T = sp_.size(), B = x.dim(0), H = x.dim(1), C = x.dim(2), d = x.dim(3);
  LINPAR_CHECK(H % T == 0, "ulysses: {} heads over {} ranks", H, T);
  Tensor send = Tensor::empty({T, B, H / T, C, d}, x.dtype(), x.device());
  Tensor recv = Tensor::empty({T, B, H / T, C, d}, x.dtype(), x.device());
  heads_to_blocks(x, send);
  sp_.all_to_all(send, recv);
  Tensor out = Tensor::empty({B, H / T, T * C, d}, x.dtype(), x.device());
  blocks_to_sequence(recv, out);
  return out;
}

void UlyssesAttention::to_sequence(const Tensor& x, Tensor& out) const {
  const int64_t T = sp_.size(), B = x.dim(0), Hs = x.dim(1), C = x.dim(2) / T, d = x.dim(3);
  Tensor send = Tensor::empty({T, B, Hs, C, d}, x.dtype(), x.device());
  Tensor recv = Tensor::empty({T, B, Hs, C, d}, x.dtype(), x.device());
  sequence_to_blocks(x, send);
  sp_.all_to_all(send, recv);
  blocks_to_heads(recv, out);
}

std::vector<double> UlyssesAttention::my_slopes(const std::vector<double>& slopes) const {
  const size_t per_rank = slopes.size() / static_cast<size_t>(sp_.size());
  const auto first = slopes.begin() + static_cast<std::ptrdiff_t>(per_rank * static_cast<size_t>(sp_.rank()));
  return {first, first + static_cast<std::ptrdiff_t>(per_rank)};
}

void UlyssesAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                               const std::vector<double>& slopes, int64_t block, Tensor& o,
                               AttentionCache& cache) const {
  Tensor qh, kh, vh;
  {
    const OpScope op("ulysses.to_heads.forward");
    qh = to_heads(q);
    kh = to_heads(k);
    vh = to_heads(v);
  }
  Tensor oh = Tensor::empty(vh.shape(), v.dtype(), v.device()), none;
  {
    const OpScope op("ulysses.attention.forward");
    lightning_attention_forward(qh, kh, vh, my_slopes(slopes), block, none, oh, none);
  }
  {
    const OpScope op("ulysses.to_sequence.forward");
    to_sequence(oh, o);
  }
  cache.saved = {qh, kh, vh};
}

// The head-layout attention again from the kept head-layout q, k, v, and its
// output sent back to the sequence layout (the one collective repeated).
void UlyssesAttention::recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const std::vector<double>& slopes, int64_t block,
                                 const AttentionCache& cache, Tensor& o) const {
  (void)q, (void)k;
  const Tensor &qh = cache.saved.at(0), &kh = cache.saved.at(1), &vh = cache.saved.at(2);
  Tensor oh = Tensor::empty(vh.shape(), v.dtype(), v.device()), none;
  {
    const OpScope op("ulysses.attention.forward");
    lightning_attention_forward(qh, kh, vh, my_slopes(slopes), block, none, oh, none);
  }
  const OpScope op("ulysses.to_sequence.forward");
  to_sequence(oh, o);
}

void UlyssesAttention::backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                const std::vector<double>& slopes, int64_t block,
                                const AttentionCache& cache, const Tensor& d_o, Tensor& dq,
                                Tensor& dk, Tensor& dv) const {
  (void)q, (void)k, (void)v;  // the head-sharded copies in the cache are used instead
  const Tensor &qh = cache.saved.at(0), &kh = cache.saved.at(1), &vh = cache.saved.at(2);
  Tensor d_oh;
  {
    const OpScope op("ulysses.to_heads.backward");
    d_oh = to_heads(d_o);
  }
  Tensor dqh = Tensor::empty(qh.shape(), qh.dtype(), qh.device()),
         dkh = Tensor::empty(kh.shape(), kh.dtype(), kh.device()),
         dvh = Tensor::empty(vh.shape(), vh.dtype(), vh.device()), none;
  {
    const OpScope op("ulysses.attention.backward");
    lightning_attention_backward(qh, kh, vh, my_slopes(slopes), block, none, d_oh, none, dqh, dkh,
                                 dvh, none);
  }
  const OpScope op("ulysses.to_sequence.backward");
  to_sequence(dqh, dq);
  to_sequence(dkh, dk);
  to_sequence(dvh, dv);
}

}  // namespace linpar::lasp
