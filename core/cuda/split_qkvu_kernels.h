// Launchers for the token mixer's fused split of its q/k/v/u projection (raw
// device pointers; host code reaches them through core/ops/split_qkvu.h).
// `bf16` selects bf16 tensors (else f32); arithmetic is f32.
#pragma once

#include <cstdint>

namespace linpar::cuda {

// qkvu, d_qkvu: [batch, length, 4·n_heads·head_dim] (blocks q, k, v, u);
// q, k, v (and their gradients): [batch, n_heads, length, head_dim];
// u, du: [batch, length, n_heads·head_dim].
struct QkvuDims {
  int64_t batch, length, n_heads, head_dim;
};
// q = SiLU(q block), k = SiLU(k block), v = v block in the head layout; u = u block.
void split_qkvu_forward(bool bf16, const QkvuDims& dims, const void* qkvu, void* q, void* k,
                        void* v, void* u);
// d_qkvu = [SiLU'(q block) ⊙ dq, SiLU'(k block) ⊙ dk, dv, du] in columns.
void split_qkvu_backward(bool bf16, const QkvuDims& dims, const void* dq, const void* dk,
                         const void* dv, const void* du, const void* qkvu, void* d_qkvu);

}  // namespace linpar::cuda
