// Token embedding lookup with a constant scale (TransNormerLLM scales by √D
// unless the config says no_scale_embedding).
#pragma once

#include "core/tensor.h"

namespace linpar {

// tokens: [rows] i32, table: [V, D] -> y: [rows, D];  y[r] = scale · table[tokens[r]]
// Tokens outside [0, V) are a user error (the data does not match the model).
void embedding_forward(const Tensor& tokens, const Tensor& table, double scale, Tensor& y);
// d_table[tokens[r]] += scale · dy[r]
void embedding_backward(const Tensor& dy, const Tensor& tokens, double scale, Tensor& d_table);

int64_t embedding_forward_flops(int64_t rows, int64_t width);
int64_t embedding_backward_flops(int64_t rows, int64_t width);

}  // namespace linpar
