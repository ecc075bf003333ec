// Token embedding lookup with a constant scale (TransNormerLLM scales by √D
// unless the config says no_scale_embedding).
#pragma once

#include "core/tensor.h"

namespace linpar {

// tokens: [rows] i32, table: [V_local, D] holding vocabulary rows
// [vocab_offset, vocab_offset + V_local) of a vocabulary of vocab_size (the
// table's rows when vocab_size < 0) -> y: [rows, D];
// y[r] = scale · table[tokens[r] − vocab_offset], or 0 when another rank holds
// that row (vocabulary-parallel embedding; the group sums the partial ys).
// Tokens outside [0, vocab_size) are a user error (the data does not match the model).
void embedding_forward(const Tensor& tokens, const Tensor& table, double scale, Tensor& y,
                       int64_t vocab_offset = 0, int64_t vocab_size = -1);
// d_table[tokens[r] − vocab_offset] += scale · dy[r] for the rows this table holds
void embedding_backward(const Tensor& dy, const Tensor& tokens, double scale, Tensor& d_table,
                        int64_t vocab_offset = 0);

int64_t embedding_forward_flops(int64_t rows, int64_t width);
int64_t embedding_backward_flops(int64_t rows, int64_t width);

}  // namespace linpar
