// The token mixer's split of its fused projection (MODEL.md, "GLA"):
//   q, k, v, u = split4(x W_qkvu);  q, k = SiLU(q), SiLU(k)
// with q, k and v moved into the head layout the attention wants, in one pass
// over qkvu each way. It computes exactly heads_from_columns (core/ops/layout.h)
// followed by silu_forward / silu_backward (core/ops/activation.h), which stay
// the reference it is tested against.
#pragma once

#include "core/tensor.h"

namespace linpar {

// qkvu: [B, N, 4·Dl] (blocks q, k, v, u of Dl = H·d columns each) ->
// q, k, v: [B, H, N, d], u: [B, N, Dl];
//   q[b,h,n,j] = SiLU(qkvu[b, n, h·d + j]),  k[b,h,n,j] = SiLU(qkvu[b, n, Dl + h·d + j]),
//   v[b,h,n,j] = qkvu[b, n, 2·Dl + h·d + j], u[b,n,c] = qkvu[b, n, 3·Dl + c]
void split_qkvu_forward(const Tensor& qkvu, Tensor& q, Tensor& k, Tensor& v, Tensor& u);
// dq, dk, dv: [B, H, N, d], du: [B, N, Dl], qkvu (the forward's input, for the
// raw q and k) -> d_qkvu: [B, N, 4·Dl] (overwritten);
//   d_qkvu = [SiLU'(q_raw) ⊙ dq, SiLU'(k_raw) ⊙ dk, dv, du] in columns, with
//   SiLU'(x) = σ(x) · (1 + x · (1 − σ(x)))
void split_qkvu_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& du,
                         const Tensor& qkvu, Tensor& d_qkvu);

// FLOPs for head blocks of `elements` (= B·N·Dl) elements each: SiLU on two.
int64_t split_qkvu_forward_flops(int64_t elements);
int64_t split_qkvu_backward_flops(int64_t elements);

}  // namespace linpar
