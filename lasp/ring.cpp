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
    note_ring_receive(RingReceive::Posts);  // before the intra-chunk kernel
  }
  if (r < T - 1) kv_out = Tensor::empty({B, H, dk, dv}, state, q.device());
  // Intra-chunk output and S_r while KV_{r−1} travels.
  {
    const OpScope op("lasp.intra.forward");
    lightning_attention_forward(q, k, v, slopes, block, none, o, kv_out);
  }
  if (r > 0) {
    receive->wait();
    note_ring_receive(RingReceive::Waits);
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

// The chunk's output from its own q, k, v and the kept KV_{r−1}: the two
// kernels forward ran, without S_r (its send went in forward) and without
// the ring.
void LaspRing::recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                         const std::vector<double>& slopes, int64_t block,
                         const AttentionCache& cache, Tensor& o) const {
  Tensor none;
  {
    const OpScope op("lasp.intra.forward");
    lightning_attention_forward(q, k, v, slopes, block, none, o, none);
  }
  if (sp_.rank() > 0) {
    const OpScope op("lasp.inter.forward");
    inter_chunk_forward(q, slopes, cache.saved.at(0), o);
  }
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
    note_ring_receive(RingReceive::Posts);
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
    note_ring_receive(RingReceive::Waits);
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

}  // namespace linpar::lasp
