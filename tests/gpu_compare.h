// Shared by the GPU tests: comparing a CUDA result with the CPU reference
// (relative to the reference's norm; NaN anywhere fails), and outputs
// poisoned with NaN before a kernel writes them.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace linpar::testing {

// ‖got − want‖ / ‖want‖ over all elements; infinity when got holds a NaN.
inline double relative_error(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to(Device::CPU).to(DType::F64).to_vector<double>();
  const std::vector<double> w = want.to(Device::CPU).to(DType::F64).to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i])) return std::numeric_limits<double>::infinity();
    diff += (g[i] - w[i]) * (g[i] - w[i]);
    norm += w[i] * w[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

// A CUDA tensor of `dtype` filled with NaN.
inline Tensor poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
  return t.to(dtype).to(Device::CUDA);
}

// rows i32 ids drawn uniformly from [0, limit) (tokens, targets), on the CPU.
inline Tensor random_ids(int64_t rows, int64_t limit, uint64_t seed) {
  CounterRng rng(seed, "ids");
  std::vector<int32_t> ids(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    ids[static_cast<size_t>(r)] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(r), limit));
  return Tensor::from_vector<int32_t>({rows}, ids);
}

// Elements [offset, offset + numel(shape)) of `full` (1-D) as `shape`: with
// offset 1 the data pointer sits 2 or 4 bytes past a 16-byte boundary, which
// sends vectorised kernels down their element-wise path.
inline Tensor view_of(const Tensor& full, int64_t offset, const Shape& shape) {
  return full.slice0(offset, offset + shape_numel(shape)).reshape(shape);
}

// A poisoned CUDA output of `shape` at `offset` in its buffer; `full` keeps
// the whole buffer, to check that nothing before the view was written.
struct PoisonedView {
  Tensor full, view;
};
inline PoisonedView poisoned_view(const Shape& shape, int64_t offset, DType dtype) {
  Tensor full = poisoned({shape_numel(shape) + offset}, dtype);
  return {full, view_of(full, offset, shape)};
}
// Whether the elements before the view are all still NaN.
inline bool head_untouched(const PoisonedView& out) {
  const int64_t offset = out.full.numel() - out.view.numel();
  if (offset == 0) return true;
  const std::vector<float> head =
      out.full.slice0(0, offset).to(Device::CPU).to(DType::F32).to_vector<float>();
  for (float v : head)
    if (!std::isnan(v)) return false;
  return true;
}

// The tolerance of a GPU result against the CPU reference by compute dtype.
inline double gpu_tolerance(DType dtype) { return dtype == DType::F32 ? 1e-5 : 1e-2; }

}  // namespace linpar::testing
