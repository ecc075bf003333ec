#include "core/ops/embedding.h"

#include <algorithm>
#include <optional>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/embedding_kernels.h"
#endif

namespace linpar {

int64_t embedding_forward_flops(int64_t rows, int64_t width) { return rows * width; }
int64_t embedding_backward_flops(int64_t rows, int64_t width) { return 2 * rows * width; }

namespace {
[[noreturn]] void token_outside(int32_t token, int64_t vocab) {
  user_error("token id {} is outside the model's vocabulary [0, {})", token, vocab);
}

void check_cuda_tokens(const char* op, const Tensor& tokens) {
  LINPAR_CHECK(tokens.device() == Device::CUDA && tokens.dtype() == DType::I32,
               "{}: tokens must be a CUDA i32 tensor (got {} {})", op, device_name(tokens.device()),
               dtype_name(tokens.dtype()));
}

#ifdef LINPAR_HAVE_CUDA
cuda::EmbeddingDims embedding_dims(const Tensor& tokens, const Tensor& table, int64_t vocab_offset,
                                   int64_t vocab_size) {
  return {tokens.numel(), table.dim(1), table.dim(0), vocab_offset, vocab_size};
}

void embedding_forward_cuda(const Tensor& tokens, const Tensor& table, double scale, Tensor& y,
                            int64_t vocab_offset, int64_t vocab_size) {
  const bool bf16 = cuda_operands("embedding_forward", {&table, &y});
  Tensor scratch = Tensor::empty({2}, DType::I32, Device::CUDA);  // 8 bytes: the first bad token
  const std::optional<int32_t> outside = cuda::embedding_forward(
      bf16, embedding_dims(tokens, table, vocab_offset, vocab_size), tokens.device_data<int32_t>(),
      table.raw_data(), static_cast<float>(scale), y.raw_data(), scratch.raw_data());
  if (outside) token_outside(*outside, vocab_size);
}

void embedding_backward_cuda(const Tensor& dy, const Tensor& tokens, double scale, Tensor& d_table,
                             int64_t vocab_offset) {
  const bool dy_bf16 = dy.dtype() == DType::BF16, d_table_bf16 = d_table.dtype() == DType::BF16;
  // A bf16 gradient gathers its f32 sums here first (one rounding per element).
  Tensor accumulator =
      d_table_bf16 ? Tensor::empty(d_table.shape(), DType::F32, Device::CUDA) : Tensor();
  cuda::embedding_backward(
      dy_bf16, d_table_bf16, embedding_dims(tokens, d_table, vocab_offset, d_table.dim(0)),
      dy.raw_data(), tokens.device_data<int32_t>(), static_cast<float>(scale), d_table.raw_data(),
      d_table_bf16 ? accumulator.device_data<float>() : nullptr);
}
#endif
}  // namespace

void embedding_forward(const Tensor& tokens, const Tensor& table, double scale, Tensor& y,
                       int64_t vocab_offset, int64_t vocab_size) {
  LINPAR_OP_TIME("embedding_forward", table.device());
  LINPAR_CHECK(tokens.dtype() == DType::I32, "embedding_forward: tokens are {}",
               dtype_name(tokens.dtype()));
  const int64_t local = table.dim(0), width = table.dim(1), rows = tokens.numel();
  const int64_t vocab = vocab_size < 0 ? local : vocab_size;
  LINPAR_CHECK(y.numel() == rows * width, "embedding_forward: y {}", shape_string(y.shape()));
  // A table row per token (those outside a vocabulary shard are zeros,
  // not read: the bound is what a plan can state without the tokens).
  count_traffic(OpKind::Memory, {&tokens}, {&y});
  count_traffic(OpKind::Memory, rows * width * static_cast<int64_t>(dtype_size(table.dtype())), 0);
  if (plan_only(table, embedding_forward_flops(rows, width))) return;
  if (table.device() == Device::CUDA) {
    check_cuda_tokens("embedding_forward", tokens);
    LINPAR_CUDA_OR_FAIL("embedding_forward",
                        embedding_forward_cuda(tokens, table, scale, y, vocab_offset, vocab));
    count_flops(embedding_forward_flops(rows, width));
    return;
  }
  check_cpu_float("embedding_forward", table);
  const int32_t* tp = tokens.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(table.dtype(), "embedding_forward", [&]<typename T>() {
    const T* e = table.data<T>();
    T* yp = y.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      if (tp[r] < 0 || tp[r] >= vocab) token_outside(tp[r], vocab);
      const int64_t row_index = tp[r] - vocab_offset;
      if (row_index < 0 || row_index >= local) {
        std::fill(yp + r * width, yp + (r + 1) * width, T(0));
        continue;
      }
      const T* row = e + row_index * width;
      for (int64_t i = 0; i < width; ++i) yp[r * width + i] = row[i] * static_cast<T>(scale);
    }
  });
  count_flops(embedding_forward_flops(rows, width));
}

void embedding_backward(const Tensor& dy, const Tensor& tokens, double scale, Tensor& d_table,
                        int64_t vocab_offset) {
  LINPAR_OP_TIME("embedding_backward", dy.device());
  const int64_t local = d_table.dim(0), width = d_table.dim(1), rows = tokens.numel();
  // Each token's gradient row is accumulated (read and written).
  const int64_t rows_bytes = rows * width * static_cast<int64_t>(dtype_size(d_table.dtype()));
  count_traffic(OpKind::Memory, static_cast<int64_t>(dy.nbytes() + tokens.nbytes()) + rows_bytes,
                rows_bytes);
  if (plan_only(dy, embedding_backward_flops(rows, width))) return;
  if (dy.device() == Device::CUDA) {
    // Mixed precision keeps f32 gradients of a bf16 table: dy may be bf16 with
    // d_table f32; a bf16 d_table takes a bf16 dy only.
    cuda_operands("embedding_backward", {&dy});
    LINPAR_CHECK(d_table.device() == Device::CUDA &&
                     (d_table.dtype() == DType::F32 || d_table.dtype() == dy.dtype()),
                 "embedding_backward: d_table must be CUDA f32, or {} like dy (got {} {})",
                 dtype_name(dy.dtype()), device_name(d_table.device()),
                 dtype_name(d_table.dtype()));
    check_cuda_tokens("embedding_backward", tokens);
    LINPAR_CHECK(dy.numel() == rows * width, "embedding_backward: dy {} for {} tokens of width {}",
                 shape_string(dy.shape()), rows, width);
    LINPAR_CUDA_OR_FAIL("embedding_backward",
                        embedding_backward_cuda(dy, tokens, scale, d_table, vocab_offset));
    count_flops(embedding_backward_flops(rows, width));
    return;
  }
  check_cpu_float("embedding_backward", dy);
  const int32_t* tp = tokens.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "embedding_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    T* g = d_table.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row_index = tp[r] - vocab_offset;
      if (row_index < 0 || row_index >= local) continue;
      T* row = g + row_index * width;
      for (int64_t i = 0; i < width; ++i) row[i] += static_cast<T>(scale) * dyp[r * width + i];
    }
  });
  count_flops(embedding_backward_flops(rows, width));
}

}  // namespace linpar
