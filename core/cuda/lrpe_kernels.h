// Launchers for the CUDA LRPE kernels (raw device pointers; host code reaches
// them through core/ops/lrpe.h). x, theta, y, dy and dx share one dtype, bf16
// (`bf16`) or f32; d_theta is f32 or bf16 (`d_theta_bf16`); arithmetic is f32.
#pragma once

#include <cstdint>

namespace linpar::cuda {

// x: [batch, heads, length, head_dim], theta: [heads · head_dim]; positions
// are position_offset + n.
struct LrpeDims {
  int64_t batch, heads, length, head_dim, position_offset;
};

// y[.., j] = x[j]·cos(θp), y[.., d + j] = x[j]·sin(θp) with the angle θp
// rounded to f32 as the CPU's f32 path rounds it.
void lrpe_forward(bool bf16, const LrpeDims& d, const void* x, const void* theta, void* y);

// f32 scratch the backward needs for its per-tile partial sums of dθ.
int64_t lrpe_backward_partials(const LrpeDims& d);
// dx = dy[j]·cos + dy[d+j]·sin (overwritten); d_theta += Σ_{b,n} p·x·(dy[d+j]·cos − dy[j]·sin),
// summed per tile of positions into `partials`, then over tiles in a fixed
// order (deterministic: no atomics).
void lrpe_backward(bool bf16, bool d_theta_bf16, const LrpeDims& d, const void* dy, const void* x,
                   const void* theta, void* dx, void* d_theta, float* partials);

}  // namespace linpar::cuda
