#include "core/ops/embedding.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/ops/dispatch.h"

namespace linpar {

int64_t embedding_forward_flops(int64_t rows, int64_t width) { return rows * width; }
int64_t embedding_backward_flops(int64_t rows, int64_t width) { return 2 * rows * width; }

void embedding_forward(const Tensor& tokens, const Tensor& table, double scale, Tensor& y,
                       int64_t vocab_offset, int64_t vocab_size) {
  check_cpu_float("embedding_forward", table);
  LINPAR_CHECK(tokens.dtype() == DType::I32, "embedding_forward: tokens are {}",
               dtype_name(tokens.dtype()));
  const int64_t local = table.dim(0), width = table.dim(1), rows = tokens.numel();
  const int64_t vocab = vocab_size < 0 ? local : vocab_size;
  LINPAR_CHECK(y.numel() == rows * width, "embedding_forward: y {}", shape_string(y.shape()));
  const int32_t* tp = tokens.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(table.dtype(), "embedding_forward", [&]<typename T>() {
    const T* e = table.data<T>();
    T* yp = y.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      if (tp[r] < 0 || tp[r] >= vocab) {
        user_error("token id {} is outside the model's vocabulary [0, {})", tp[r], vocab);
      }
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
  check_cpu_float("embedding_backward", dy);
  const int64_t local = d_table.dim(0), width = d_table.dim(1), rows = tokens.numel();
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
