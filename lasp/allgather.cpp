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

void AllGatherAttention::plan(const AttentionShape& s, int64_t e, const OpSite& site) const {
  const bool backward = site.pass == Pass::Backward;
  const int r = sp_.rank();
  // Bytes: chunk tensors in the compute dtype (e bytes); states f32 on the GPU
  // (compute f32 or bf16) and in the compute dtype on the CPU (f32 or f64),
  // so max(e, 4) bytes per state element.
  const int64_t state = s.batch * s.heads * s.dk * s.dv * std::max<int64_t>(e, 4);
  const int64_t qk = s.batch * s.heads * s.length * s.dk * e,
                vo = s.batch * s.heads * s.length * s.dv * e;
  auto op = [&](const std::string& name, int64_t flops, int64_t read, int64_t written,
                std::vector<PlannedCollective> collectives = {}) {
    PlannedOp& added =
        site.add(OpKind::Attention, name, flops, read, written, std::move(collectives));
    added.core.head_dim = static_cast<int16_t>(s.dk);
    return &added;
  };
  const int64_t chunk_state = chunk_state_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv);
  const int64_t add = state_decay_add_flops(s.batch, s.heads, s.dk, s.dv);
  const int64_t in = r > 0 ? state : 0;  // the prefix state KV_{r-1}, and its gradient
  if (!backward) {
    // The collectives write the gathered chunks in place: no kernel.
    site.memory("allgather.gather.forward", 0, 0, 0,
                {{CollectiveKind::AllGather, CommGroup::Sp, qk},
                 {CollectiveKind::AllGather, CommGroup::Sp, vo}});
    // Each earlier chunk's state, all but the first decayed into the sum.
    if (r > 0)
      op("allgather.prefix.forward", r * chunk_state + (r - 1) * add,
         r * (qk + vo) + (r - 1) * 2 * state, r * state + (r - 1) * state);
    op("allgather.attention.forward",
       lightning_attention_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, r > 0,
                                         false),
       2 * qk + vo + in, vo);
    return;
  }
  op("allgather.attention.backward",
     lightning_attention_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, r > 0,
                                        false, r > 0),
     2 * qk + 2 * vo + in, 2 * qk + vo + in);
  // Each earlier chunk's dK, dV accumulated from the state's gradient, which
  // is decayed between chunks.
  if (r > 0) {
    op("allgather.prefix.backward",
       r * chunk_state_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv) + (r - 1) * add,
       r * (2 * (qk + vo) + state) + (r - 1) * 2 * state, r * (qk + vo) + (r - 1) * state);
  }
  site.memory("allgather.scatter.backward", 0, 0, 0,
              {{CollectiveKind::ReduceScatter, CommGroup::Sp, qk},
               {CollectiveKind::ReduceScatter, CommGroup::Sp, vo}});
}

}  // namespace linpar::lasp
