#include "core/ops/chunk_layout.h"

#include <cstring>

#include "core/error.h"
#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/chunk_layout_kernels.h"
#endif

namespace linpar {

namespace {

// Copies row (b, h, c) of a [B, H, C, d] tensor viewed as T blocks along one
// axis (CUDA tensors: the same copies in core/cuda/chunk_layout_kernels.cu). `heads_split`: blocks split H (x has H = T·Hs); otherwise they split
// the sequence (x has N = T·C). to_blocks chooses the direction.
void permute(const Tensor& from, Tensor& to, bool heads_split, bool to_blocks) {
  LINPAR_OP_TIME("chunk_layout", from.device());
  count_traffic(OpKind::Memory, {&from}, {&to});
  if (plan_only(from, 0)) return;
  const Tensor& blocks = to_blocks ? to : from;
  const Tensor& x = to_blocks ? from : to;
  LINPAR_CHECK(blocks.ndim() == 5 && x.ndim() == 4 && blocks.dtype() == x.dtype(),
               "chunk layout: blocks {} vs {}", shape_string(blocks.shape()),
               shape_string(x.shape()));
  const int64_t T = blocks.dim(0), B = blocks.dim(1), Hs = blocks.dim(2), C = blocks.dim(3),
                d = blocks.dim(4);
  const Shape want = heads_split ? Shape{B, T * Hs, C, d} : Shape{B, Hs, T * C, d};
  LINPAR_CHECK(x.shape() == want, "chunk layout: {} does not match blocks {}",
               shape_string(x.shape()), shape_string(blocks.shape()));
  if (from.device() == Device::CUDA || to.device() == Device::CUDA) {
    LINPAR_CHECK(from.device() == to.device(), "chunk layout: {} tensor into a {} one",
                 device_name(from.device()), device_name(to.device()));
    LINPAR_CUDA_OR_FAIL("chunk layout",
                        cuda::permute_chunk_blocks({T, B, Hs, C, d}, heads_split, to_blocks,
                                                   dtype_size(x.dtype()), from.raw_data(), to.raw_data()));
    return;
  }
  const size_t row = static_cast<size_t>(d) * dtype_size(x.dtype());
  const auto* src = static_cast<const char*>(from.raw_data());
  auto* dst = static_cast<char*>(to.raw_data());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < Hs; ++h) {
        // The C rows of (t, b, h) are contiguous on both sides.
        const int64_t block_row = ((t * B + b) * Hs + h) * C;
        const int64_t x_row = heads_split ? ((b * T + t) * Hs + h) * C : ((b * Hs + h) * T + t) * C;
        const int64_t from_row = to_blocks ? x_row : block_row;
        const int64_t to_row = to_blocks ? block_row : x_row;
        std::memcpy(dst + static_cast<size_t>(to_row) * row, src + static_cast<size_t>(from_row) * row,
                    static_cast<size_t>(C) * row);
      }
    }
  }
}

}  // namespace

void heads_to_blocks(const Tensor& x, Tensor& blocks) { permute(x, blocks, true, true); }
void blocks_to_heads(const Tensor& blocks, Tensor& x) { permute(blocks, x, true, false); }
void blocks_to_sequence(const Tensor& blocks, Tensor& x) { permute(blocks, x, false, false); }
void sequence_to_blocks(const Tensor& x, Tensor& blocks) { permute(x, blocks, false, true); }

Tensor block_view(const Tensor& blocks, int64_t i) {
  Shape rest(blocks.shape().begin() + 1, blocks.shape().end());
  return blocks.slice0(i, i + 1).reshape(rest);
}

Tensor block_copy(const Tensor& blocks, int64_t i) {
  Tensor view = block_view(blocks, i);
  count_traffic(OpKind::Memory, static_cast<int64_t>(view.nbytes()),
                static_cast<int64_t>(view.nbytes()));
  return view.clone();
}

}  // namespace linpar
