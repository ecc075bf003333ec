// Finite-difference gradient checking for the hand-written backward passes.
// Central differences in f64 on (a deterministic sample of) the elements of a
// tensor; the test states its own tolerance.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/rng.h"
#include "core/tensor.h"

namespace linpar::testing {

// A tensor of N(0, std) values (f64, or f32 when asked).
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double std = 1.0,
                            DType dtype = DType::F64) {
  Tensor t = Tensor::empty(shape, DType::F64);
  CounterRng rng(seed, "test");
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<double>()[i] = std * rng.normal(static_cast<uint64_t>(i));
  return dtype == DType::F64 ? t : t.to(dtype);
}

// Largest |a − n| / max(|a|, |n|, floor) over the checked elements, where a is
// the analytic gradient and n the central difference of `loss` w.r.t. x. The
// floor keeps tiny gradients (e.g. softmax tails) from turning the difference's
// rounding noise (~1e-16·|loss|/step) into a large relative error.
inline double max_gradient_error(const std::function<double()>& loss, Tensor& x,
                                 const Tensor& analytic, int64_t max_elements = 64,
                                 double step = 1e-5, double floor = 1e-3) {
  EXPECT_EQ(x.dtype(), DType::F64);
  EXPECT_EQ(x.shape(), analytic.shape());
  double worst = 0;
  const int64_t n = x.numel();
  const int64_t stride = std::max<int64_t>(1, n / max_elements);
  for (int64_t i = 0; i < n; i += stride) {
    double* p = x.data<double>() + i;
    const double saved = *p;
    *p = saved + step;
    const double plus = loss();
    *p = saved - step;
    const double minus = loss();
    *p = saved;
    const double numeric = (plus - minus) / (2 * step);
    const double a = analytic.data<double>()[i];
    const double error = std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), floor});
    worst = std::max(worst, error);
  }
  return worst;
}

// Σ x ⊙ r: a scalar loss whose gradient w.r.t. x is r.
inline double dot(const Tensor& x, const Tensor& r) {
  double total = 0;
  for (int64_t i = 0; i < x.numel(); ++i) total += x.data<double>()[i] * r.data<double>()[i];
  return total;
}

}  // namespace linpar::testing
