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

int64_t cross_entropy_forward_flops(int64_t rows, int64_t vocab);
int64_t cross_entropy_backward_flops(int64_t rows, int64_t vocab);

}  // namespace linpar
