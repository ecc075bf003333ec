#include "core/ops/layout.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/layout_kernels.h"
#endif

namespace linpar {

namespace {
// Copies between the two layouts; `to_heads` picks the direction.
template <typename T>
void move_heads(T* columns, T* heads, int64_t batch, int64_t length, int64_t width, int64_t n_heads,
                int64_t head_dim, int64_t column, bool to_heads) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < n_heads; ++h) {
      for (int64_t n = 0; n < length; ++n) {
        T* c = columns + (b * length + n) * width + column + h * head_dim;
        T* hp = heads + ((b * n_heads + h) * length + n) * head_dim;
        if (to_heads)
          std::copy(c, c + head_dim, hp);
        else
          std::copy(hp, hp + head_dim, c);
      }
    }
  }
}

void check_layouts(const char* op, const Tensor& columns, const Tensor& heads, int64_t column) {
  if (columns.device() == Device::CUDA) {
    cuda_operands(op, {&columns, &heads});
  } else {
    check_cpu_float(op, columns);
    check_same(op, columns, heads);
  }
  LINPAR_CHECK(columns.ndim() == 3 && heads.ndim() == 4, "{}: {} vs {}", op,
               shape_string(columns.shape()), shape_string(heads.shape()));
  LINPAR_CHECK(heads.dim(0) == columns.dim(0) && heads.dim(2) == columns.dim(1) &&
                   column + heads.dim(1) * heads.dim(3) <= columns.dim(2),
               "{}: {} vs {} at column {}", op, shape_string(columns.shape()),
               shape_string(heads.shape()), column);
}

#ifdef LINPAR_HAVE_CUDA
void move_heads_cuda(const Tensor& columns, const Tensor& heads, int64_t column, bool to_heads) {
  const cuda::HeadLayout layout{columns.dim(0), columns.dim(1), columns.dim(2),
                                heads.dim(1),   heads.dim(3),   column};
  cuda::move_heads(columns.dtype() == DType::BF16, layout, columns.raw_data(), heads.raw_data(),
                   to_heads);
}
#endif
}  // namespace

void heads_from_columns(const Tensor& x, int64_t column, Tensor& y) {
  LINPAR_OP_TIME("heads_from_columns", x.device());
  // y's heads are moved from their columns of x.
  count_traffic(OpKind::Memory, static_cast<int64_t>(y.nbytes()), static_cast<int64_t>(y.nbytes()));
  check_layouts("heads_from_columns", x, y, column);
  if (plan_only(x, 0)) return;
  if (x.device() == Device::CUDA) {
    LINPAR_CUDA_OR_FAIL("heads_from_columns", move_heads_cuda(x, y, column, true));
    return;
  }
  LINPAR_DISPATCH_FLOAT(x.dtype(), "heads_from_columns", [&]<typename T>() {
    move_heads<T>(x.data<T>(), y.data<T>(), x.dim(0), x.dim(1), x.dim(2), y.dim(1), y.dim(3),
                  column, true);
  });
}

void heads_to_columns(const Tensor& y, int64_t column, Tensor& x) {
  LINPAR_OP_TIME("heads_to_columns", x.device());
  count_traffic(OpKind::Memory, static_cast<int64_t>(y.nbytes()), static_cast<int64_t>(y.nbytes()));
  check_layouts("heads_to_columns", x, y, column);
  if (plan_only(x, 0)) return;
  if (x.device() == Device::CUDA) {
    LINPAR_CUDA_OR_FAIL("heads_to_columns", move_heads_cuda(x, y, column, false));
    return;
  }
  LINPAR_DISPATCH_FLOAT(x.dtype(), "heads_to_columns", [&]<typename T>() {
    move_heads<T>(x.data<T>(), y.data<T>(), x.dim(0), x.dim(1), x.dim(2), y.dim(1), y.dim(3),
                  column, false);
  });
}

}  // namespace linpar
