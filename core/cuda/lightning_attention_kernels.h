// Launchers for the CUDA lightning-attention kernels (raw device pointers;
// host code reaches them through core/ops/lightning_attention.h).
//
// Two implementations behind each launcher: bf16 operands with d_k, d_v
// multiples of 16 up to 256 run the tensor-core kernels of
// lightning_attention_fast.cu (parallel over chunks of the sequence, per-chunk
// states in a caller-provided workspace); everything else (f32 operands, other
// head dims, no workspace) runs the CUDA-core kernels of
// lightning_attention_kernels.cu, one CTA per (batch, head) walking the sequence.
#pragma once

#include <cstddef>
#include <cstdint>

namespace linpar::cuda {

// The most heads one launch takes (their slopes travel as a kernel argument).
inline constexpr int kMaxAttentionHeads = 256;

struct AttentionDims {
  int64_t batch, heads, length, dk, dv;
};

// Device scratch (bytes) the launchers need for these dims: 0 when they take
// the CUDA-core kernels (which need none). The caller allocates it (the caching
// allocator: everything runs on the legacy default stream) and passes it as
// `workspace`. chunk_tokens (the tensor-core path's tokens per chunk, a
// multiple of 64; 0: chosen from the device) must be the launcher's.
size_t lightning_forward_workspace_bytes(const AttentionDims& d, bool bf16,
                                         int64_t chunk_tokens = 0);
size_t lightning_backward_workspace_bytes(const AttentionDims& d, bool bf16,
                                          int64_t chunk_tokens = 0);

// Forward, as the CPU reference (lightning_attention.h) defines it: q, k
// [B, H, N, dk], v [B, H, N, dv], optional kv_in [B, H, dk, dv] (f32) ->
// o [B, H, N, dv], optional kv_out (f32). bf16 selects bf16 q/k/v/o (else f32);
// states f32; the CUDA-core kernels compute in f32, the tensor-core kernels
// multiply bf16 operands (scores, decayed rows, the state rounded to bf16)
// into f32 accumulators.
void lightning_forward(const AttentionDims& d, const double* slopes, bool bf16, const void* q,
                       const void* k, const void* v, const float* kv_in, void* o, float* kv_out,
                       void* workspace = nullptr, int64_t chunk_tokens = 0);

// Backward: d_o [B, H, N, dv], optional d_kv_out (f32) -> dq, dk, dv
// (overwritten, the operands' dtype) and optional d_kv_in (f32); kv_in as in
// forward. The CUDA-core kernel: one CTA per (batch, head) holds the whole
// d_k × d_v state (f32) in shared memory: dQ in a pass forward over the
// blocks, dK and dV in a pass backward with the state gradient.
void lightning_backward(const AttentionDims& d, const double* slopes, bool bf16, const void* q,
                        const void* k, const void* v, const float* kv_in, const void* d_o,
                        const float* d_kv_out, void* dq, void* dk, void* dv, float* d_kv_in,
                        void* workspace = nullptr, int64_t chunk_tokens = 0);

}  // namespace linpar::cuda
