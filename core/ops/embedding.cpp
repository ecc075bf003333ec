#include "core/ops/embedding.h"

#include "core/op_stats.h"
#include "core/ops/dispatch.h"

namespace linpar {

int64_t embedding_forward_flops(int64_t rows, int64_t width) { return rows * width; }
int64_t embedding_backward_flops(int64_t rows, int64_t width) { return 2 * rows * width; }

void embedding_forward(const Tensor& tokens, const Tensor& table, double scale, Tensor& y) {
  check_cpu_float("embedding_forward", table);
  LINPAR_CHECK(tokens.dtype() == DType::I32, "embedding_forward: tokens are {}",
               dtype_name(tokens.dtype()));
  const int64_t vocab = table.dim(0), width = table.dim(1), rows = tokens.numel();
  LINPAR_CHECK(y.numel() == rows * width, "embedding_forward: y {}", shape_string(y.shape()));
  const int32_t* tp = tokens.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(table.dtype(), "embedding_forward", [&]<typename T>() {
    const T* e = table.data<T>();
    T* yp = y.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      if (tp[r] < 0 || tp[r] >= vocab) {
        user_error("token id {} is outside the model's vocabulary [0, {})", tp[r], vocab);
      }
      const T* row = e + static_cast<int64_t>(tp[r]) * width;
      for (int64_t i = 0; i < width; ++i) yp[r * width + i] = row[i] * static_cast<T>(scale);
    }
  });
  count_flops(embedding_forward_flops(rows, width));
}

void embedding_backward(const Tensor& dy, const Tensor& tokens, double scale, Tensor& d_table) {
  check_cpu_float("embedding_backward", dy);
  const int64_t width = d_table.dim(1), rows = tokens.numel();
  const int32_t* tp = tokens.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "embedding_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    T* g = d_table.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      T* row = g + static_cast<int64_t>(tp[r]) * width;
      for (int64_t i = 0; i < width; ++i) row[i] += static_cast<T>(scale) * dyp[r * width + i];
    }
  });
  count_flops(embedding_backward_flops(rows, width));
}

}  // namespace linpar
