// Softmax cross-entropy over the vocabulary.
#pragma once

#include "core/tensor.h"

namespace linpar {

// logits: [rows, V], targets: [rows] i32 -> losses: [rows];
// loss_r = logsumexp(logits_r) − logits_r[target_r]  (natural log, nats)
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses);
// dlogits_r = scale · (softmax(logits_r) − onehot(target_r)); scale is dL/dloss_r
// (1/rows for a mean loss).
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, double scale,
                            Tensor& dlogits);

// Vocabulary-parallel cross-entropy (Megatron-LM): this rank holds the logits
// of vocabulary [vocab_offset, vocab_offset + V_local). The group combines the
// phases: max over ranks of row_max, then sum over ranks of sum_exp and
// target_logit; loss = log(Σ exp(l − max)) + max − l[target].
void cross_entropy_local_max(const Tensor& logits, Tensor& row_max);
void cross_entropy_local_sums(const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                              const Tensor& row_max, Tensor& sum_exp, Tensor& target_logit);
void cross_entropy_losses(const Tensor& row_max, const Tensor& sum_exp, const Tensor& target_logit,
                          Tensor& losses);
// dlogits = scale · (exp(l − max) / sum_exp − onehot(target)) on this rank's vocabulary.
void cross_entropy_backward_sharded(const Tensor& logits, const Tensor& targets,
                                    int64_t vocab_offset, const Tensor& row_max,
                                    const Tensor& sum_exp, double scale, Tensor& dlogits);

int64_t cross_entropy_forward_flops(int64_t rows, int64_t vocab);
int64_t cross_entropy_backward_flops(int64_t rows, int64_t vocab);

}  // namespace linpar
