#include "lasp/lasp2.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/ops/chunk_layout.h"
#include "core/ops/kv_state.h"
#include "core/ops/lightning_attention.h"

namespace linpar::lasp {

void Lasp2::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                    const std::vector<double>& slopes, int64_t block, Tensor& o,
                    AttentionCache& cache) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dk = q.dim(3), dv = v.dim(3);
  // States: f32 on the GPU whatever the compute dtype, q's dtype on the CPU.
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  Tensor s = Tensor::empty({B, H, dk, dv}, state, q.device());
  Tensor all = Tensor::empty({T, B, H, dk, dv}, state, q.device());
  std::unique_ptr<CommRequest> gather;
  {
    const OpScope op("lasp2.state.forward");
    chunk_state_forward(k, v, slopes, s);
    gather = sp_.all_gather_async(s, all);
  }
  Tensor none;
  {
    const OpScope op("lasp2.intra.forward");
    lightning_attention_forward(q, k, v, slopes, block, none, o, none);  // overlaps the all-gather
  }
  gather->wait();
  Tensor kv_in;
  if (r > 0) {
    {
      const OpScope op("lasp2.prefix.forward");
      kv_in = block_copy(all, 0);
      for (int s_rank = 1; s_rank < r; ++s_rank)
        state_decay_add(kv_in, slopes, C, block_view(all, s_rank), kv_in);
    }
    const OpScope op("lasp2.inter.forward");
    inter_chunk_forward(q, slopes, kv_in, o);
  }
  cache.saved = {kv_in};
}

// The chunk's output from its own q, k, v and the kept prefix KV_{r−1}: no
// state is formed or gathered again.
void Lasp2::recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                      const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                      Tensor& o) const {
  Tensor none;
  {
    const OpScope op("lasp2.intra.forward");
    lightning_attention_forward(q, k, v, slopes, block, none, o, none);
  }
  if (sp_.rank() > 0) {
    const OpScope op("lasp2.inter.forward");
    inter_chunk_forward(q, slopes, cache.saved.at(0), o);
  }
}

void Lasp2::backward(const Tensor& q, const Tensor& k, const Tensor& v,
                     const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                     const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dkh = q.dim(3), dvh = v.dim(3);
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  Tensor none;
  {
    const OpScope op("lasp2.intra.backward");
    lightning_attention_backward(q, k, v, slopes, block, none, d_o, none, dq, dk, dv, none);
  }
  Tensor all = Tensor::empty({T, B, H, dkh, dvh}, state, q.device());
  {
    // G_r; rank 0 has no state before it and contributes zeros to the gather.
    const OpScope op("lasp2.inter.backward");
    Tensor g = Tensor::zeros({B, H, dkh, dvh}, state, q.device());
    if (r > 0) inter_chunk_backward(q, slopes, cache.saved.at(0), d_o, dq, g);
    sp_.all_gather(g, all);
  }
  if (r < T - 1) {
    Tensor d_kv_out;
    {
      const OpScope op("lasp2.suffix.backward");
      d_kv_out = block_copy(all, T - 1);
      for (int t = T - 2; t > r; --t)
        state_decay_add(d_kv_out, slopes, C, block_view(all, t), d_kv_out);
    }
    const OpScope op("lasp2.state.backward");
    chunk_state_backward(k, v, slopes, d_kv_out, dk, dv);
  }
}

}  // namespace linpar::lasp
