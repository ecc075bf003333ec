// Pointwise ops of the token and channel mixers: SiLU on q and k, and the
// elementwise product used by the output gate (u ⊙ o) and SGLU ((xW1) ⊙ (xW2)).
#pragma once

#include "core/tensor.h"

namespace linpar {

// x -> y (same shape);  y = x · σ(x)
void silu_forward(const Tensor& x, Tensor& y);
// dx = dy · σ(x) · (1 + x · (1 − σ(x)))
void silu_backward(const Tensor& dy, const Tensor& x, Tensor& dx);

// a, b -> y (same shape);  y = a ⊙ b
void mul_forward(const Tensor& a, const Tensor& b, Tensor& y);
// da = dy ⊙ b, db = dy ⊙ a (either may be undefined to skip it)
void mul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, Tensor& da, Tensor& db);

int64_t silu_forward_flops(int64_t n);
int64_t silu_backward_flops(int64_t n);
int64_t mul_forward_flops(int64_t n);
int64_t mul_backward_flops(int64_t n);

}  // namespace linpar
