#include "lasp/allgather.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/ops/chunk_layout.h"
#include "core/ops/kv_state.h"
#include "core/ops/lightning_attention.h"

namespace linpar::lasp {

void AllGatherAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const std::vector<double>& slopes, int64_t block, Tensor& o,
                                 AttentionCache& cache) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dk = q.dim(3), dv = v.dim(3);
  // States: f32 on the GPU whatever the compute dtype, q's dtype on the CPU.
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  Tensor k_all = Tensor::empty({T, B, H, C, dk}, q.dtype(), q.device());
  Tensor v_all = Tensor::empty({T, B, H, C, dv}, q.dtype(), q.device());
  {
    const OpScope op("allgather.gather.forward");
    sp_.all_gather(k, k_all);
    sp_.all_gather(v, v_all);
  }
  Tensor kv_in;
  if (r > 0) {
    const OpScope op("allgather.prefix.forward");
    kv_in = Tensor::empty({B, H, dk, dv}, state, q.device());
    chunk_state_forward(block_view(k_all, 0), block_view(v_all, 0), slopes, kv_in);
    Tensor s = Tensor::empty({B, H, dk, dv}, state, q.device());
    for (int s_rank = 1; s_rank < r; ++s_rank) {
      chunk_state_forward(block_view(k_all, s_rank), block_view(v_all, s_rank), slopes, s);
      state_decay_add(kv_in, slopes, C, s, kv_in);
    }
  }
  Tensor none;
  {
    const OpScope op("allgather.attention.forward");
    lightning_attention_forward(q, k, v, slopes, block, kv_in, o, none);
  }
  cache.saved = {kv_in, k_all, v_all};
}

// The chunk's output from its own q, k, v and the kept KV_{r−1} (formed in
// forward from the gathered K and V, which stay in the cache for backward).
void AllGatherAttention::recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const std::vector<double>& slopes, int64_t block,
                                   const AttentionCache& cache, Tensor& o) const {
  Tensor none;
  const OpScope op("allgather.attention.forward");
  lightning_attention_forward(q, k, v, slopes, block, cache.saved.at(0), o, none);
}

void AllGatherAttention::backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const std::vector<double>& slopes, int64_t block,
                                  const AttentionCache& cache, const Tensor& d_o, Tensor& dq,
                                  Tensor& dk, Tensor& dv) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dkh = q.dim(3), dvh = v.dim(3);
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  const Tensor& kv_in = cache.saved.at(0);
  const Tensor& k_all = cache.saved.at(1);
  const Tensor& v_all = cache.saved.at(2);
  // Contributions to every chunk's dK, dV; this rank's own chunk gets the
  // local gradient, earlier chunks what flows through KV_{r−1}.
  Tensor dk_all = Tensor::zeros({T, B, H, C, dkh}, q.dtype(), q.device());
  Tensor dv_all = Tensor::zeros({T, B, H, C, dvh}, q.dtype(), q.device());
  Tensor dk_mine = block_view(dk_all, r), dv_mine = block_view(dv_all, r);
  Tensor d_kv_in, none;
  if (r > 0) d_kv_in = Tensor::empty({B, H, dkh, dvh}, state, q.device());
  {
    const OpScope op("allgather.attention.backward");
    lightning_attention_backward(q, k, v, slopes, block, kv_in, d_o, none, dq, dk_mine, dv_mine,
                                 d_kv_in);
  }
  if (r > 0) {
    // dS_s = λ^{C(r−1−s)} dKV_{r−1}, from s = r−1 down.
    const OpScope op("allgather.prefix.backward");
    const Tensor zero = Tensor::zeros({B, H, dkh, dvh}, state, q.device());
    for (int s_rank = r - 1; s_rank >= 0; --s_rank) {
      Tensor dk_s = block_view(dk_all, s_rank), dv_s = block_view(dv_all, s_rank);
      chunk_state_backward(block_view(k_all, s_rank), block_view(v_all, s_rank), slopes, d_kv_in,
                           dk_s, dv_s);
      if (s_rank > 0) state_decay_add(d_kv_in, slopes, C, zero, d_kv_in);
    }
  }
  const OpScope op("allgather.scatter.backward");
  sp_.reduce_scatter(dk_all, dk);
  sp_.reduce_scatter(dv_all, dv);
}

}  // namespace linpar::lasp
