#include "core/ops/srmsnorm.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/pointwise_kernels.h"
#endif

namespace linpar {

int64_t srmsnorm_forward_flops(int64_t rows, int64_t width) { return rows * 3 * width; }
int64_t srmsnorm_backward_flops(int64_t rows, int64_t width) { return rows * 5 * width; }

namespace {

// Where element i of row r lives: plain rows of `width` (head_dim 0), or the
// head layout [B, H, N, d] read as rows r = (b, n) of width H·d, element
// i = h·d + j at [b, h, n, j].
struct RowLayout {
  int64_t rows = 0, width = 0;
  int64_t batch = 0, heads = 0, length = 0, head_dim = 0;  // the head layout's [B, H, N, d]

  static RowLayout plain(const Tensor& t) { return {t.numel() / t.dim(-1), t.dim(-1)}; }
  static RowLayout head_layout(const char* op, const Tensor& t) {
    LINPAR_CHECK(t.ndim() == 4, "{}: expected a [B, H, N, d] tensor, got {}", op,
                 shape_string(t.shape()));
    return {t.dim(0) * t.dim(2), t.dim(1) * t.dim(3), t.dim(0), t.dim(1), t.dim(2), t.dim(3)};
  }
  bool is_heads() const { return head_dim != 0; }
#ifdef LINPAR_HAVE_CUDA
  cuda::HeadRows cuda_heads() const { return {batch, heads, length, head_dim}; }
#endif

  // Calls f(i, k) for each element i of row r, i ascending, k its offset.
  template <typename F>
  void for_row(int64_t r, F&& f) const {
    if (!is_heads()) {
      for (int64_t i = 0; i < width; ++i) f(i, r * width + i);
      return;
    }
    const int64_t base = ((r / length) * heads * length + r % length) * head_dim;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < head_dim; ++j) f(h * head_dim + j, base + h * length * head_dim + j);
    }
  }
};

// Σ x² per row; x laid out by `l`.
void row_sums(const char* op, const Tensor& x, const RowLayout& l, Tensor& sums) {
  LINPAR_OP_TIME(op, x.device());
  count_traffic(OpKind::Memory, {&x}, {&sums});
  LINPAR_CHECK(sums.numel() == l.rows, "{}: sums {}", op, shape_string(sums.shape()));
  if (plan_only(x, 2 * l.rows * l.width)) return;
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands(op, {&x});
    check_cuda_f32(op, "sums", sums);
    LINPAR_CUDA_OR_FAIL(
        op, l.is_heads() ? cuda::srmsnorm_row_sums_heads(bf16, l.cuda_heads(), x.raw_data(),
                                                         sums.device_data<float>())
                         : cuda::srmsnorm_row_sums(bf16, x.raw_data(), sums.device_data<float>(),
                                                   l.rows, l.width));
    count_flops(2 * l.rows * l.width);
    return;
  }
  check_cpu_float(op, x);
  LINPAR_DISPATCH_FLOAT(x.dtype(), op, [&]<typename T>() {
    const T* xp = x.data<T>();
    T* sp = sums.data<T>();
    for (int64_t r = 0; r < l.rows; ++r) {
      T sum_sq = 0;
      l.for_row(r, [&](int64_t, int64_t k) { sum_sq += xp[k] * xp[k]; });
      sp[r] = sum_sq;
    }
  });
  count_flops(2 * l.rows * l.width);
}

// y = x · rstd, rstd = 1 / sqrt(sums / full_width + eps); x laid out by `l`,
// y plain rows.
void apply(const char* op, const Tensor& x, const RowLayout& l, const Tensor& sums,
           int64_t full_width, double eps, Tensor& y, Tensor& rstd) {
  LINPAR_OP_TIME(op, x.device());
  count_traffic(OpKind::Memory, {&x, &sums}, {&y, &rstd});
  LINPAR_CHECK(y.numel() == x.numel() && rstd.numel() == l.rows && y.dim(-1) == l.width,
               "{}: y {} rstd {}", op, shape_string(y.shape()), shape_string(rstd.shape()));
  if (plan_only(x, l.rows * l.width)) return;
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands(op, {&x, &y});
    check_cuda_f32(op, "sums", sums);
    check_cuda_f32(op, "rstd", rstd);
    LINPAR_CUDA_OR_FAIL(
        op, l.is_heads()
                ? cuda::srmsnorm_apply_heads(
                      bf16, l.cuda_heads(), x.raw_data(), sums.device_data<float>(), full_width,
                      static_cast<float>(eps), y.raw_data(), rstd.device_data<float>())
                : cuda::srmsnorm_apply(bf16, x.raw_data(), sums.device_data<float>(), full_width,
                                       static_cast<float>(eps), y.raw_data(),
                                       rstd.device_data<float>(), l.rows, l.width));
    count_flops(l.rows * l.width);
    return;
  }
  check_cpu_float(op, x);
  check_same(op, x, y);
  LINPAR_DISPATCH_FLOAT(x.dtype(), op, [&]<typename T>() {
    const T* xp = x.data<T>();
    const T* sp = sums.data<T>();
    T* yp = y.data<T>();
    T* rp = rstd.data<T>();
    for (int64_t r = 0; r < l.rows; ++r) {
      const T inv = T(1) / std::sqrt(sp[r] / static_cast<T>(full_width) + static_cast<T>(eps));
      rp[r] = inv;
      l.for_row(r, [&](int64_t i, int64_t k) { yp[r * l.width + i] = xp[k] * inv; });
    }
  });
  count_flops(l.rows * l.width);
}

// dx = rstd · (dy − y · dots / full_width); dy, y plain rows, dx laid out by `l`.
void backward_apply(const char* op, const Tensor& dy, const Tensor& y, const Tensor& rstd,
                    const Tensor& dots, int64_t full_width, Tensor& dx, const RowLayout& l,
                    bool accumulate) {
  LINPAR_OP_TIME(op, dy.device());
  count_traffic(OpKind::Memory, {&dy, &y, &rstd, &dots, accumulate ? &dx : nullptr}, {&dx});
  LINPAR_CHECK(dx.numel() == y.numel() && dy.numel() == y.numel() && y.dim(-1) == l.width &&
                   rstd.numel() == l.rows && dots.numel() == l.rows,
               "{} shapes", op);
  if (plan_only(dy, 3 * l.rows * l.width)) return;
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands(op, {&dy, &y, &dx});
    check_cuda_f32(op, "rstd", rstd);
    check_cuda_f32(op, "dots", dots);
    LINPAR_CUDA_OR_FAIL(
        op, l.is_heads()
                ? cuda::srmsnorm_backward_apply_heads(
                      bf16, l.cuda_heads(), dy.raw_data(), y.raw_data(), rstd.device_data<float>(),
                      dots.device_data<float>(), full_width, dx.raw_data())
                : cuda::srmsnorm_backward_apply(bf16, dy.raw_data(), y.raw_data(),
                                                rstd.device_data<float>(),
                                                dots.device_data<float>(), full_width,
                                                dx.raw_data(), accumulate, l.rows, l.width));
    count_flops(3 * l.rows * l.width);
    return;
  }
  check_cpu_float(op, dy);
  check_same(op, dy, y);
  check_same(op, dy, dx);
  LINPAR_DISPATCH_FLOAT(dy.dtype(), op, [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* yp = y.data<T>();
    const T* rp = rstd.data<T>();
    const T* dp = dots.data<T>();
    T* dxp = dx.data<T>();
    for (int64_t r = 0; r < l.rows; ++r) {
      const T mean = dp[r] / static_cast<T>(full_width);
      l.for_row(r, [&](int64_t i, int64_t k) {
        const int64_t at = r * l.width + i;
        const T g = rp[r] * (dyp[at] - yp[at] * mean);
        dxp[k] = accumulate ? dxp[k] + g : g;
      });
    }
  });
  count_flops(3 * l.rows * l.width);
}

}  // namespace

void srmsnorm_row_sums(const Tensor& x, Tensor& sums) {
  row_sums("srmsnorm_row_sums", x, RowLayout::plain(x), sums);
}

void srmsnorm_row_sums_heads(const Tensor& x, Tensor& sums) {
  row_sums("srmsnorm_row_sums_heads", x, RowLayout::head_layout("srmsnorm_row_sums_heads", x),
           sums);
}

void srmsnorm_apply(const Tensor& x, const Tensor& sums, int64_t full_width, double eps, Tensor& y,
                    Tensor& rstd) {
  apply("srmsnorm_apply", x, RowLayout::plain(x), sums, full_width, eps, y, rstd);
}

void srmsnorm_apply_heads(const Tensor& x, const Tensor& sums, int64_t full_width, double eps,
                          Tensor& y, Tensor& rstd) {
  apply("srmsnorm_apply_heads", x, RowLayout::head_layout("srmsnorm_apply_heads", x), sums,
        full_width, eps, y, rstd);
}

void srmsnorm_forward(const Tensor& x, double eps, Tensor& y, Tensor& rstd) {
  if (x.device() == Device::CPU) check_cpu_float("srmsnorm_forward", x);
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  // Row statistics are f32 on the GPU, in x's dtype on the CPU.
  Tensor sums = Tensor::empty({rows}, Tensor::stats_dtype(x.dtype(), x.device()), x.device());
  srmsnorm_row_sums(x, sums);
  srmsnorm_apply(x, sums, width, eps, y, rstd);
}

void srmsnorm_row_dots(const Tensor& dy, const Tensor& y, Tensor& dots) {
  LINPAR_OP_TIME("srmsnorm_row_dots", dy.device());
  count_traffic(OpKind::Memory, {&dy, &y}, {&dots});
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  LINPAR_CHECK(dy.numel() == y.numel() && dots.numel() == rows, "srmsnorm_row_dots shapes");
  if (plan_only(dy, 2 * rows * width)) return;
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("srmsnorm_row_dots", {&dy, &y});
    check_cuda_f32("srmsnorm_row_dots", "dots", dots);
    LINPAR_CUDA_OR_FAIL("srmsnorm_row_dots",
                        cuda::srmsnorm_row_dots(bf16, dy.raw_data(), y.raw_data(),
                                                dots.device_data<float>(), rows, width));
    count_flops(2 * rows * width);
    return;
  }
  check_cpu_float("srmsnorm_row_dots", dy);
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "srmsnorm_row_dots", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* yp = y.data<T>();
    T* dp = dots.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      T dot = 0;
      for (int64_t i = 0; i < width; ++i) dot += dyp[r * width + i] * yp[r * width + i];
      dp[r] = dot;
    }
  });
  count_flops(2 * rows * width);
}

void srmsnorm_backward_apply(const Tensor& dy, const Tensor& y, const Tensor& rstd,
                             const Tensor& dots, int64_t full_width, Tensor& dx, bool accumulate) {
  backward_apply("srmsnorm_backward_apply", dy, y, rstd, dots, full_width, dx, RowLayout::plain(y),
                 accumulate);
}

void srmsnorm_backward_apply_heads(const Tensor& dy, const Tensor& y, const Tensor& rstd,
                                   const Tensor& dots, int64_t full_width, Tensor& dx) {
  backward_apply("srmsnorm_backward_apply_heads", dy, y, rstd, dots, full_width, dx,
                 RowLayout::head_layout("srmsnorm_backward_apply_heads", dx), /*accumulate=*/false);
}

void srmsnorm_backward(const Tensor& dy, const Tensor& y, const Tensor& rstd, Tensor& dx,
                       bool accumulate) {
  if (dy.device() == Device::CPU) check_cpu_float("srmsnorm_backward", dy);
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  Tensor dots = Tensor::empty({rows}, Tensor::stats_dtype(dy.dtype(), dy.device()), dy.device());
  srmsnorm_row_dots(dy, y, dots);
  srmsnorm_backward_apply(dy, y, rstd, dots, width, dx, accumulate);
}

}  // namespace linpar
