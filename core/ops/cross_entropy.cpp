#include "core/ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <utility>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/cross_entropy_kernels.h"
#endif

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

[[noreturn]] void target_outside(int32_t target, int64_t vocab) {
  user_error("target token id {} is outside the vocabulary [0, {})", target, vocab);
}

int32_t checked_target(const int32_t* targets, int64_t r, int64_t vocab) {
  int32_t t = targets[r];
  if (t < 0 || t >= vocab) target_outside(t, vocab);
  return t;
}

// GPU operands: logits (and dlogits) CUDA f32 or bf16, targets CUDA i32 with
// one per row, row statistics CUDA f32 with one per row.
bool cuda_logits(const char* op, std::initializer_list<const Tensor*> logits, const Tensor& targets,
                 int64_t rows) {
  const bool bf16 = cuda_operands(op, logits);
  LINPAR_CHECK(targets.device() == Device::CUDA && targets.dtype() == DType::I32,
               "{}: targets must be a CUDA i32 tensor (got {} {})", op,
               device_name(targets.device()), dtype_name(targets.dtype()));
  LINPAR_CHECK(targets.numel() == rows, "{}: {} targets for {} rows", op, targets.numel(), rows);
  return bf16;
}

void check_row_stats(const char* op,
                     std::initializer_list<std::pair<const char*, const Tensor*>> stats,
                     int64_t rows) {
  for (const auto& [what, t] : stats) {
    check_cuda_f32(op, what, *t);
    LINPAR_CHECK(t->numel() == rows, "{}: {} has {} values for {} rows", op, what, t->numel(),
                 rows);
  }
}

#ifdef LINPAR_HAVE_CUDA
// The unsharded forward and backward on the GPU: the phases with offset 0,
// the targets checked against the vocabulary by the sums kernel.
struct RowStats {
  Tensor row_max, sum_exp, target_logit;
};

RowStats cuda_row_stats(bool bf16, const Tensor& logits, const Tensor& targets, int64_t rows,
                        int64_t vocab) {
  RowStats s{Tensor::empty({rows}, DType::F32, Device::CUDA),
             Tensor::empty({rows}, DType::F32, Device::CUDA),
             Tensor::empty({rows}, DType::F32, Device::CUDA)};
  Tensor scratch = Tensor::empty({2}, DType::I32, Device::CUDA);  // 8 bytes: the first bad target
  cuda::cross_entropy_local_max(bf16, logits.raw_data(), s.row_max.device_data<float>(), rows,
                                vocab);
  const std::optional<int32_t> outside = cuda::cross_entropy_local_sums(
      bf16, logits.raw_data(), targets.device_data<int32_t>(), 0, s.row_max.device_data<float>(),
      s.sum_exp.device_data<float>(), s.target_logit.device_data<float>(), rows, vocab,
      scratch.raw_data());
  if (outside) target_outside(*outside, vocab);
  return s;
}

void cuda_forward(bool bf16, const Tensor& logits, const Tensor& targets, Tensor& losses,
                  int64_t rows, int64_t vocab) {
  const RowStats s = cuda_row_stats(bf16, logits, targets, rows, vocab);
  cuda::cross_entropy_losses(s.row_max.device_data<float>(), s.sum_exp.device_data<float>(),
                             s.target_logit.device_data<float>(), losses.device_data<float>(),
                             rows);
}

void cuda_backward(bool bf16, const Tensor& logits, const Tensor& targets, double scale,
                   Tensor& dlogits, int64_t rows, int64_t vocab) {
  const RowStats s = cuda_row_stats(bf16, logits, targets, rows, vocab);
  cuda::cross_entropy_backward(bf16, logits.raw_data(), targets.device_data<int32_t>(), 0,
                               s.row_max.device_data<float>(), s.sum_exp.device_data<float>(),
                               static_cast<float>(scale), dlogits.raw_data(), rows, vocab);
}
#endif
}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses) {
  count_traffic(OpKind::Memory, {&logits, &targets}, {&losses});
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  if (plan_only(logits, cross_entropy_forward_flops(rows, vocab))) return;
  LINPAR_CHECK(targets.numel() == rows && losses.numel() == rows, "cross_entropy_forward shapes");
  if (logits.device() == Device::CUDA) {
    const bool bf16 = cuda_logits("cross_entropy_forward", {&logits}, targets, rows);
    check_row_stats("cross_entropy_forward", {{"losses", &losses}}, rows);
    LINPAR_CUDA_OR_FAIL("cross_entropy_forward",
                        cuda_forward(bf16, logits, targets, losses, rows, vocab));
    count_flops(cross_entropy_forward_flops(rows, vocab));
    return;
  }
  check_cpu_float("cross_entropy_forward", logits);
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
  count_traffic(OpKind::Memory, {&logits, &targets}, {&dlogits});
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  if (plan_only(logits, cross_entropy_backward_flops(rows, vocab))) return;
  LINPAR_CHECK(dlogits.numel() == logits.numel(), "cross_entropy_backward shapes");
  if (logits.device() == Device::CUDA) {
    const bool bf16 = cuda_logits("cross_entropy_backward", {&logits, &dlogits}, targets, rows);
    LINPAR_CUDA_OR_FAIL("cross_entropy_backward",
                        cuda_backward(bf16, logits, targets, scale, dlogits, rows, vocab));
    count_flops(cross_entropy_backward_flops(rows, vocab));
    return;
  }
  check_cpu_float("cross_entropy_backward", logits);
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
  LINPAR_OP_TIME("cross_entropy_local_max", logits.device());
  count_traffic(OpKind::Memory, {&logits}, {&row_max});
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  if (plan_only(logits, rows * vocab)) return;
  if (logits.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("cross_entropy_local_max", {&logits});
    check_row_stats("cross_entropy_local_max", {{"row_max", &row_max}}, rows);
    LINPAR_CUDA_OR_FAIL("cross_entropy_local_max",
                        cuda::cross_entropy_local_max(bf16, logits.raw_data(),
                                                      row_max.device_data<float>(), rows, vocab));
    count_flops(rows * vocab);
    return;
  }
  check_cpu_float("cross_entropy_local_max", logits);
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
  LINPAR_OP_TIME("cross_entropy_local_sums", logits.device());
  count_traffic(OpKind::Memory, {&logits, &targets, &row_max}, {&sum_exp, &target_logit});
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  if (plan_only(logits, 2 * rows * vocab)) return;
  if (logits.device() == Device::CUDA) {
    const char* op = "cross_entropy_local_sums";
    const bool bf16 = cuda_logits(op, {&logits}, targets, rows);
    check_row_stats(
        op, {{"row_max", &row_max}, {"sum_exp", &sum_exp}, {"target_logit", &target_logit}}, rows);
    // Sharded: a target outside this rank's slice is another rank's (no check here).
    LINPAR_CUDA_OR_FAIL(op,
                        cuda::cross_entropy_local_sums(
                            bf16, logits.raw_data(), targets.device_data<int32_t>(), vocab_offset,
                            row_max.device_data<float>(), sum_exp.device_data<float>(),
                            target_logit.device_data<float>(), rows, vocab, nullptr));
    count_flops(2 * rows * vocab);
    return;
  }
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
  LINPAR_OP_TIME("cross_entropy_losses", losses.device());
  count_traffic(OpKind::Memory, {&row_max, &sum_exp, &target_logit}, {&losses});
  if (plan_only(losses, 0)) return;
  if (losses.device() == Device::CUDA) {
    const int64_t rows = losses.numel();
    check_row_stats("cross_entropy_losses",
                    {{"row_max", &row_max},
                     {"sum_exp", &sum_exp},
                     {"target_logit", &target_logit},
                     {"losses", &losses}},
                    rows);
    LINPAR_CUDA_OR_FAIL("cross_entropy_losses",
                        cuda::cross_entropy_losses(
                            row_max.device_data<float>(), sum_exp.device_data<float>(),
                            target_logit.device_data<float>(), losses.device_data<float>(), rows));
    return;
  }
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
  LINPAR_OP_TIME("cross_entropy_backward", logits.device());
  count_traffic(OpKind::Memory, {&logits, &targets, &row_max, &sum_exp}, {&dlogits});
  const int64_t vocab = logits.dim(-1), rows = logits.numel() / vocab;
  if (plan_only(logits, cross_entropy_backward_flops(rows, vocab))) return;
  if (logits.device() == Device::CUDA) {
    const char* op = "cross_entropy_backward_sharded";
    const bool bf16 = cuda_logits(op, {&logits, &dlogits}, targets, rows);
    LINPAR_CHECK(dlogits.numel() == logits.numel(), "{}: dlogits {} for logits {}", op,
                 shape_string(dlogits.shape()), shape_string(logits.shape()));
    check_row_stats(op, {{"row_max", &row_max}, {"sum_exp", &sum_exp}}, rows);
    LINPAR_CUDA_OR_FAIL(
        op, cuda::cross_entropy_backward(bf16, logits.raw_data(), targets.device_data<int32_t>(),
                                         vocab_offset, row_max.device_data<float>(),
                                         sum_exp.device_data<float>(), static_cast<float>(scale),
                                         dlogits.raw_data(), rows, vocab));
    count_flops(cross_entropy_backward_flops(rows, vocab));
    return;
  }
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
