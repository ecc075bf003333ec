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

void Lasp2::plan(const AttentionShape& s, int64_t e, const OpSite& site) const {
  const bool backward = site.pass == Pass::Backward;
  const int r = sp_.rank(), T = sp_.size();
  // Bytes: chunk tensors in the compute dtype (e bytes); states f32 on the GPU
  // (compute f32 or bf16) and in the compute dtype on the CPU (f32 or f64),
  // so max(e, 4) bytes per state element.
  const int64_t state_e = std::max<int64_t>(e, 4);
  const int64_t state = s.batch * s.heads * s.dk * s.dv * state_e;
  const int64_t qk = s.batch * s.heads * s.length * s.dk * e,
                vo = s.batch * s.heads * s.length * s.dv * e;
  const int64_t add = state_decay_add_flops(s.batch, s.heads, s.dk, s.dv);
  auto op = [&](const std::string& name, int64_t flops, int64_t read, int64_t written,
                std::vector<PlannedCollective> collectives = {}, OpKind kind = OpKind::Attention) {
    PlannedOp& added = site.add(kind, name, flops, read, written, std::move(collectives));
    added.core.head_dim = static_cast<int16_t>(s.dk);
    return &added;
  };
  // A sum of gathered states: the first copied out of the gather's buffer,
  // each of the `adds` others decayed into it (a copy alone when none).
  auto state_sum = [&](const std::string& name, int64_t adds) {
    op(name, adds * add, state + adds * 2 * state, state + adds * state, {},
       adds > 0 ? OpKind::Attention : OpKind::Memory);
  };
  if (!backward) {
    op("lasp2.state.forward", chunk_state_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
       qk + vo, state, {{CollectiveKind::AllGather, CommGroup::Sp, state}});
    op("lasp2.intra.forward",
       lightning_attention_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, false,
                                         false),
       2 * qk + vo, vo);
    if (r > 0) {
      state_sum("lasp2.prefix.forward", r - 1);
      op("lasp2.inter.forward", inter_chunk_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
         qk + vo + state, vo);
    }
    return;
  }
  op("lasp2.intra.backward",
     lightning_attention_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, false,
                                        false, false),
     2 * qk + 2 * vo, 2 * qk + vo);
  // Rank 0 has no state before it: it gathers zeros and runs no kernel. The
  // kernels accumulate into dq and the state's gradient (and below into dk,
  // dv: read and written).
  const PlannedCollective gather{CollectiveKind::AllGather, CommGroup::Sp, state};
  if (r > 0) {
    op("lasp2.inter.backward", inter_chunk_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
       2 * qk + vo + 2 * state, qk + state, {gather});
  } else {
    op("lasp2.inter.backward", 0, 0, 0, {gather}, OpKind::Memory);
  }
  if (r < T - 1) {
    state_sum("lasp2.suffix.backward", T - 2 - r);
    op("lasp2.state.backward", chunk_state_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
       2 * qk + 2 * vo + state, qk + vo);
  }
}

}  // namespace linpar::lasp
