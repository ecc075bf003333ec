// Launchers for the CUDA kernels behind core/ops/kv_state.h (raw device
// pointers; host code reaches them through that header). `bf16` selects bf16
// q/k/v/o and their gradients (else f32); every state (KV, its gradient) is
// f32, and so is all accumulation (bf16 products run on tensor cores, their
// f32 factors split into two bf16 halves: kv_state_kernels.cu). Shapes and
// math as in kv_state.h, with the chunk's tokens t = 0..C−1 and
// λ_h = exp(−slope_h):
//   chunk_state_forward    KV = Σ_t λ^{C−1−t} k_tᵀ v_t                   (overwritten)
//   chunk_state_backward   dK += diag(λ^{C−1−t}) V dKVᵀ, dV += diag(λ^{C−1−t}) K dKV
//   inter_chunk_forward    O += diag(λ^{t+1}) Q KV_in
//   inter_chunk_backward   dQ += diag(λ^{t+1}) dO KV_inᵀ, dKV_in += (diag(λ^{t+1}) Q)ᵀ dO
//   state_decay_add        out = λ^n a + b per head                     (out may be a or b)
// The sums over the chunk's tokens (KV, dKV_in) are split over CTAs and their
// partials added in a fixed order: results are reproducible run to run. Those
// two launchers take their partials' scratch (a few MB) from the caching
// device allocator for the duration of the call.
#pragma once

#include <cstdint>

namespace linpar::cuda {

// The most heads one launch takes (their slopes travel as a kernel argument).
inline constexpr int kMaxKvStateHeads = 256;

struct KvStateDims {
  int64_t batch, heads, length, dk, dv;  // length: the chunk's C tokens
};

// k: [B, H, C, dk], v: [B, H, C, dv] -> kv: [B, H, dk, dv] (f32).
void chunk_state_forward(const KvStateDims& d, const double* slopes, bool bf16, const void* k,
                         const void* v, float* kv);
void chunk_state_backward(const KvStateDims& d, const double* slopes, bool bf16, const void* k,
                          const void* v, const float* d_kv, void* dk, void* dv);
// q: [B, H, C, dk], kv_in: [B, H, dk, dv] (f32) -> o: [B, H, C, dv] (accumulated).
void inter_chunk_forward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                         const float* kv_in, void* o);
void inter_chunk_backward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                          const float* kv_in, const void* d_o, void* dq, float* d_kv_in);
// a, b, out: [batch, heads, state_size] (f32); decays: one factor per head.
void state_decay_add(int64_t batch, int64_t heads, int64_t state_size, const float* decays,
                     const float* a, const float* b, float* out);

}  // namespace linpar::cuda
