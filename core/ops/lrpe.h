// LRPE (linearized relative positional encoding, Qin et al. 2023), as
// TransNormerLLM applies it to q and k: with a learned angle θ per channel c of
// the concatenated heads, position p maps a head vector x to
// [x ⊙ cos(θp), x ⊙ sin(θp)], so that q_t·k_s picks up cos(θ(t − s)).
#pragma once

#include "core/tensor.h"

namespace linpar {

// x: [B, H, N, d], theta: [H·d] -> y: [B, H, N, 2d]; positions are
// position_offset + n (the offset is the chunk start under sequence parallelism).
void lrpe_forward(const Tensor& x, const Tensor& theta, int64_t position_offset, Tensor& y);
// dx[j] = dy[j]·cos + dy[d+j]·sin;  dθ_c += Σ p·x·(dy[d+j]·cos − dy[j]·sin)
void lrpe_backward(const Tensor& dy, const Tensor& x, const Tensor& theta, int64_t position_offset,
                   Tensor& dx, Tensor& d_theta);

// θ_c = 10000^(−2c/(H·d)), c = 0 .. H·d − 1 (MODEL.md).
std::vector<double> lrpe_initial_theta(int64_t width);

int64_t lrpe_forward_flops(int64_t numel);
int64_t lrpe_backward_flops(int64_t numel);

}  // namespace linpar
