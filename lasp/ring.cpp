#include "lasp/ring.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/ops/kv_state.h"
#include "core/ops/lightning_attention.h"

namespace linpar::lasp {

void PendingSends::add(std::unique_ptr<CommRequest> request, Tensor buffer) {
  pending_.emplace_back(std::move(request), std::move(buffer));
}

void PendingSends::wait_all() {
  for (auto& [request, buffer] : pending_) request->wait();
  pending_.clear();
}

void LaspRing::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                       const std::vector<double>& slopes, int64_t block, Tensor& o,
                       AttentionCache& cache) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dk = q.dim(3), dv = v.dim(3);
  // KV states: f32 on the GPU whatever the compute dtype, q's dtype on the CPU.
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  sends_.wait_all();
  Tensor kv_in, kv_out, none;
  std::unique_ptr<CommRequest> receive;
  if (r > 0) {
    kv_in = Tensor::empty({B, H, dk, dv}, state, q.device());
    receive = sp_.recv_async(kv_in, r - 1);
  }
  if (r < T - 1) kv_out = Tensor::empty({B, H, dk, dv}, state, q.device());
  // Intra-chunk output and S_r while KV_{r−1} travels.
  {
    const OpScope op("lasp.intra.forward");
    lightning_attention_forward(q, k, v, slopes, block, none, o, kv_out);
  }
  if (r > 0) {
    receive->wait();
    {
      const OpScope op("lasp.inter.forward");
      inter_chunk_forward(q, slopes, kv_in, o);
    }
    if (r < T - 1) {
      const OpScope op("lasp.state.forward");
      state_decay_add(kv_in, slopes, C, kv_out, kv_out);
    }
  }
  if (r < T - 1) {
    const OpScope op("lasp.send_state.forward");
    sends_.add(sp_.send_async(kv_out, r + 1), kv_out);
  }
  cache.saved = {kv_in};
}

void LaspRing::backward(const Tensor& q, const Tensor& k, const Tensor& v,
                        const std::vector<double>& slopes, int64_t block,
                        const AttentionCache& cache, const Tensor& d_o, Tensor& dq, Tensor& dk,
                        Tensor& dv) const {
  const int r = sp_.rank(), T = sp_.size();
  const int64_t B = q.dim(0), H = q.dim(1), C = q.dim(2), dkh = q.dim(3), dvh = v.dim(3);
  const DType state = Tensor::stats_dtype(q.dtype(), q.device());
  sends_.wait_all();
  Tensor d_kv_out, none;
  std::unique_ptr<CommRequest> receive;
  if (r < T - 1) {
    d_kv_out = Tensor::empty({B, H, dkh, dvh}, state, q.device());
    receive = sp_.recv_async(d_kv_out, r + 1);
  }
  {
    const OpScope op("lasp.intra.backward");
    lightning_attention_backward(q, k, v, slopes, block, none, d_o, none, dq, dk, dv, none);
  }
  Tensor d_kv_in;
  if (r > 0) {
    const OpScope op("lasp.inter.backward");
    d_kv_in = Tensor::zeros({B, H, dkh, dvh}, state, q.device());
    inter_chunk_backward(q, slopes, cache.saved.at(0), d_o, dq, d_kv_in);
  }
  if (r < T - 1) {
    receive->wait();
    {
      const OpScope op("lasp.state.backward");
      chunk_state_backward(k, v, slopes, d_kv_out, dk, dv);
    }
    if (r > 0) {
      const OpScope op("lasp.state_grad.backward");
      state_decay_add(d_kv_out, slopes, C, d_kv_in, d_kv_in);
    }
  }
  if (r > 0) {
    const OpScope op("lasp.send_state_grad.backward");
    sends_.add(sp_.send_async(d_kv_in, r - 1), d_kv_in);
  }
}

void LaspRing::plan(const AttentionShape& s, int64_t e, const OpSite& site) const {
  const bool backward = site.pass == Pass::Backward;
  const int r = sp_.rank(), T = sp_.size();
  // Bytes: chunk tensors in the compute dtype (e bytes); states f32 on the GPU
  // (compute f32 or bf16) and in the compute dtype on the CPU (f32 or f64),
  // so max(e, 4) bytes per state element.
  const int64_t state_e = std::max<int64_t>(e, 4);
  const int64_t state = s.batch * s.heads * s.dk * s.dv * state_e;
  const int64_t qk = s.batch * s.heads * s.length * s.dk * e,
                vo = s.batch * s.heads * s.length * s.dv * e;
  const bool has_in = r > 0, has_out = r < T - 1;
  auto op = [&](const std::string& name, int64_t flops, int64_t read, int64_t written,
                std::vector<PlannedCollective> collectives = {}) {
    PlannedOp& added =
        site.add(OpKind::Attention, name, flops, read, written, std::move(collectives));
    added.core.head_dim = static_cast<int16_t>(s.dk);
    return &added;
  };
  // A send moves the state from where it lies: no kernel, only the message.
  auto send = [&](const std::string& name) {
    site.memory(name, 0, 0, 0, {{CollectiveKind::SendRecv, CommGroup::Sp, state}});
  };
  // The ring's edges (forward above): a rank posts its receive before the
  // intra-chunk kernel and waits for it at the first op that reads the state.
  // The inter-chunk and state kernels accumulate into their outputs (read
  // and written: core/ops/kv_state.h).
  if (!backward) {
    op("lasp.intra.forward",
       lightning_attention_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, false,
                                         has_out),
       2 * qk + vo, vo + (has_out ? state : 0))
        ->receive = has_in ? RingReceive::Posts : RingReceive::None;
    if (has_in) {
      op("lasp.inter.forward", inter_chunk_forward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
         qk + vo + state, vo)
          ->receive = RingReceive::Waits;
      if (has_out) op("lasp.state.forward", state_decay_add_flops(s.batch, s.heads, s.dk, s.dv),
                      2 * state, state);
    }
    if (has_out) send("lasp.send_state.forward");
    return;
  }
  op("lasp.intra.backward",
     lightning_attention_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv, s.block, false,
                                        false, false),
     2 * qk + 2 * vo, 2 * qk + vo)
      ->receive = has_out ? RingReceive::Posts : RingReceive::None;
  if (has_in) {
    op("lasp.inter.backward", inter_chunk_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
       2 * qk + vo + 2 * state, qk + state);
  }
  if (has_out) {
    op("lasp.state.backward", chunk_state_backward_flops(s.batch, s.heads, s.length, s.dk, s.dv),
       2 * qk + 2 * vo + state, qk + vo)
        ->receive = RingReceive::Waits;
    if (has_in) op("lasp.state_grad.backward", state_decay_add_flops(s.batch, s.heads, s.dk, s.dv),
                   2 * state, state);
  }
  if (has_in) send("lasp.send_state_grad.backward");
}

}  // namespace linpar::lasp
