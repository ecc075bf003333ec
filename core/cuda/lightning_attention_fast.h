// The bf16 tensor-core path of lightning attention (lightning_attention_fast.cu),
// reached through the launchers of lightning_attention_kernels.h: bf16 q/k/v,
// d_k and d_v multiples of 16 up to 256, f32 states, raw device pointers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cuda/lightning_attention_kernels.h"

namespace linpar::cuda::lightning_fast {

// Whether the tensor-core kernels take these dimensions (N ≥ 1; d_k, d_v in
// {16, 32, …, 256}; batch·heads ≤ 65535).
bool supports(const AttentionDims& d);

// Device scratch (bytes) for the per-chunk states of a forward or a backward.
// chunk_tokens: tokens per chunk (rounded down to a multiple of 64), 0 picks
// them from the device's multiprocessor count; the same value goes to the pass.
size_t workspace_bytes(const AttentionDims& d, bool backward, int64_t chunk_tokens);

// As lightning_forward / lightning_backward with bf16 operands; `workspace`
// holds workspace_bytes(d, ..., chunk_tokens) bytes, 256-byte aligned. Every
// pointer 16-byte aligned (the caller checks).
void forward(const AttentionDims& d, const double* slopes, const void* q, const void* k,
             const void* v, const float* kv_in, void* o, float* kv_out, void* workspace,
             int64_t chunk_tokens);
void backward(const AttentionDims& d, const double* slopes, const void* q, const void* k,
              const void* v, const float* kv_in, const void* d_o, const float* d_kv_out, void* dq,
              void* dk, void* dv, float* d_kv_in, void* workspace, int64_t chunk_tokens);

}  // namespace linpar::cuda::lightning_fast
