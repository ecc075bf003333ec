// Launchers for the CUDA cross-entropy kernels (raw device pointers; host code
// reaches them through core/ops/cross_entropy.h). Logits and their gradient
// are bf16 (`bf16`) or f32; the per-row statistics (row_max, sum_exp,
// target_logit, losses) are f32, and so is all arithmetic. logits: [rows, vocab]
// holding vocabulary [vocab_offset, vocab_offset + vocab) of each row.
#pragma once

#include <cstdint>
#include <optional>

namespace linpar::cuda {

// row_max[r] = max_i logits[r, i]
void cross_entropy_local_max(bool bf16, const void* logits, float* row_max, int64_t rows,
                             int64_t vocab);

// sum_exp[r] = Σ_i exp(logits[r, i] − row_max[r]); target_logit[r] =
// logits[r, targets[r] − vocab_offset] when this slice holds it, else 0
// (target_logit may be null). With `scratch` (8 bytes of device memory) the
// logits are the whole vocabulary (vocab_offset 0) and the first target
// outside [0, vocab), in row order, is returned; without, nothing is checked.
std::optional<int32_t> cross_entropy_local_sums(bool bf16, const void* logits,
                                                const int32_t* targets, int64_t vocab_offset,
                                                const float* row_max, float* sum_exp,
                                                float* target_logit, int64_t rows, int64_t vocab,
                                                void* scratch);

// losses[r] = log(sum_exp[r]) + row_max[r] − target_logit[r]
void cross_entropy_losses(const float* row_max, const float* sum_exp, const float* target_logit,
                          float* losses, int64_t rows);

// dlogits[r, i] = scale · (exp(logits[r, i] − row_max[r]) / sum_exp[r] − [i = target − offset])
void cross_entropy_backward(bool bf16, const void* logits, const int32_t* targets,
                            int64_t vocab_offset, const float* row_max, const float* sum_exp,
                            float scale, void* dlogits, int64_t rows, int64_t vocab);

}  // namespace linpar::cuda
