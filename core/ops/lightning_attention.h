// Lightning attention (TransNormerLLM §3.2; Lightning Attention-2, arXiv
// 2401.04658): causal linear attention with a fixed per-head exponential decay,
// computed block-wise: a masked quadratic product inside each block of b
// tokens and a recurrent d_k×d_v state across blocks. Per (batch, head), with
// slope s and λ = exp(−s), for the N tokens t of this chunk:
//   o_t    = Σ_{j≤t} λ^{t−j} (q_t·k_j) v_j  +  λ^{t+1} q_t·KV_in
//   KV_out = λ^N KV_in + Σ_j λ^{N−1−j} k_j v_jᵀ
// KV_in (the state of every token before the chunk) and KV_out are explicit so
// that a sequence split over ranks (LASP) chains chunks exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace linpar {

// q, k: [B, H, N, dk], v: [B, H, N, dv]; slopes: H values; kv_in: [B, H, dk, dv]
// or undefined (zeros) -> o: [B, H, N, dv]; kv_out: [B, H, dk, dv] or undefined
// (not computed).
void lightning_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const std::vector<double>& slopes, int64_t block_size,
                                 const Tensor& kv_in, Tensor& o, Tensor& kv_out);

// d_o: [B, H, N, dv]; d_kv_out: [B, H, dk, dv] or undefined (zero) -> dq, dk,
// dv overwritten; d_kv_in: [B, H, dk, dv] or undefined (not computed).
// dQ runs forward over the blocks, recomputing the states it needs; dK and dV
// run backward with the state gradient G_t = λ^{m_{t+1}} G_{t+1} + (Λ Q_{t+1})ᵀ dO_{t+1}.
void lightning_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const std::vector<double>& slopes, int64_t block_size,
                                  const Tensor& kv_in, const Tensor& d_o, const Tensor& d_kv_out,
                                  Tensor& dq, Tensor& dk, Tensor& dv, Tensor& d_kv_in);

// The O(N²) definition above, for tests only (same arguments as forward).
void linear_attention_reference_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const std::vector<double>& slopes, const Tensor& kv_in,
                                        Tensor& o, Tensor& kv_out);

// FLOPs the block-wise kernels execute (the op plan uses these; a test checks
// them against the counted FLOPs).
int64_t lightning_attention_forward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                          int64_t dv, int64_t block_size, bool has_kv_in,
                                          bool want_kv_out);
int64_t lightning_attention_backward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                           int64_t dv, int64_t block_size, bool has_kv_in,
                                           bool has_d_kv_out, bool want_d_kv_in);

}  // namespace linpar
