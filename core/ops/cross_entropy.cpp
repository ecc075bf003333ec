#include "core/ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/op_stats.h"
#include "core/ops/dispatch.h"

namespace linpar {

int64_t cross_entropy_forward_flops(int64_t rows, int64_t vocab) { return rows * 3 * vocab; }
int64_t cross_entropy_backward_flops(int64_t rows, int64_t vocab) { return rows * 5 * vocab; }

namespace {
// Max and sum of exp(x − max) of one row: the stable logsumexp's two parts.
template <typename T>
void row_softmax_stats(const T* row, int64_t vocab, T& max_value, T& sum) {
  max_value = *std::max_element(row, row + vocab);
  sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max_value);
}

int32_t checked_target(const int32_t* targets, int64_t r, int64_t vocab) {
  int32_t t = targets[r];
  if (t < 0 || t >= vocab)
    user_error("target token id {} is outside the vocabulary [0, {})", t, vocab);
  return t;
}
}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses) {
  check_cpu_float("cross_entropy_forward", logits);
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  LINPAR_CHECK(targets.numel() == rows && losses.numel() == rows, "cross_entropy_forward shapes");
  const int32_t* tp = targets.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_forward", [&]<typename T>() {
    const T* lp = logits.data<T>();
    T* out = losses.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = lp + r * vocab;
      T max_value, sum;
      row_softmax_stats(row, vocab, max_value, sum);
      out[r] = std::log(sum) + max_value - row[checked_target(tp, r, vocab)];
    }
  });
  count_flops(cross_entropy_forward_flops(rows, vocab));
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, double scale,
                            Tensor& dlogits) {
  check_cpu_float("cross_entropy_backward", logits);
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  LINPAR_CHECK(dlogits.numel() == logits.numel(), "cross_entropy_backward shapes");
  const int32_t* tp = targets.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    const T* lp = logits.data<T>();
    T* dp = dlogits.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = lp + r * vocab;
      T* drow = dp + r * vocab;
      T max_value, sum;
      row_softmax_stats(row, vocab, max_value, sum);
      const T s = static_cast<T>(scale) / sum;
      for (int64_t i = 0; i < vocab; ++i) drow[i] = std::exp(row[i] - max_value) * s;
      drow[checked_target(tp, r, vocab)] -= static_cast<T>(scale);
    }
  });
  count_flops(cross_entropy_backward_flops(rows, vocab));
}

}  // namespace linpar
