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

void cross_entropy_local_max(const Tensor& logits, Tensor& row_max) {
  check_cpu_float("cross_entropy_local_max", logits);
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  LINPAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_local_max", [&]<typename T>() {
    const T* lp = logits.data<T>();
    T* mp = row_max.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      mp[r] = *std::max_element(lp + r * vocab, lp + (r + 1) * vocab);
  });
  count_flops(rows * vocab);
}

void cross_entropy_local_sums(const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                              const Tensor& row_max, Tensor& sum_exp, Tensor& target_logit) {
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  const int32_t* tp = targets.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_local_sums", [&]<typename T>() {
    const T* lp = logits.data<T>();
    const T* mp = row_max.data<T>();
    T* sp = sum_exp.data<T>();
    T* tl = target_logit.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      T sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(lp[r * vocab + i] - mp[r]);
      sp[r] = sum;
      const int64_t local = tp[r] - vocab_offset;
      tl[r] = local >= 0 && local < vocab ? lp[r * vocab + local] : T(0);
    }
  });
  count_flops(2 * rows * vocab);
}

void cross_entropy_losses(const Tensor& row_max, const Tensor& sum_exp, const Tensor& target_logit,
                          Tensor& losses) {
  LINPAR_DISPATCH_FLOAT(losses.dtype(), "cross_entropy_losses", [&]<typename T>() {
    const T* mp = row_max.data<T>();
    const T* sp = sum_exp.data<T>();
    const T* tl = target_logit.data<T>();
    T* out = losses.data<T>();
    for (int64_t r = 0; r < losses.numel(); ++r) out[r] = std::log(sp[r]) + mp[r] - tl[r];
  });
}

void cross_entropy_backward_sharded(const Tensor& logits, const Tensor& targets,
                                    int64_t vocab_offset, const Tensor& row_max,
                                    const Tensor& sum_exp, double scale, Tensor& dlogits) {
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  const int32_t* tp = targets.data<int32_t>();
  LINPAR_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward_sharded", [&]<typename T>() {
    const T* lp = logits.data<T>();
    const T* mp = row_max.data<T>();
    const T* sp = sum_exp.data<T>();
    T* dp = dlogits.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T s = static_cast<T>(scale) / sp[r];
      for (int64_t i = 0; i < vocab; ++i)
        dp[r * vocab + i] = std::exp(lp[r * vocab + i] - mp[r]) * s;
      const int64_t local = tp[r] - vocab_offset;
      if (local >= 0 && local < vocab) dp[r * vocab + local] -= static_cast<T>(scale);
    }
  });
  count_flops(cross_entropy_backward_flops(rows, vocab));
}

}  // namespace linpar
