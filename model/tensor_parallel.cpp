#include "model/tensor_parallel.h"

#include "core/ops/chunk_layout.h"

namespace linpar {

// The communicator gathers and scatters along dim 0; a [B, C, D] shard is
// the [B, 1, C, D] block of the chunk layouts, so blocks [tp, B, 1, C, D]
// re-arrange into the sequence [B, 1, tp·C, D].
Tensor TensorParallel::gather_sequence(const Tensor& x) const {
  if (!shards_sequence()) return x;
  const int64_t B = x.dim(0), C = x.dim(1), D = x.dim(2);
  Tensor blocks = Tensor::empty({size, B, 1, C, D}, x.dtype(), x.device());
  group->all_gather(x, blocks);
  Tensor full = Tensor::empty({B, size * C, D}, x.dtype(), x.device());
  Tensor as_heads = full.reshape({B, 1, size * C, D});
  blocks_to_sequence(blocks, as_heads);
  return full;
}

void TensorParallel::reduce_partial(Tensor& partial, Tensor& out) const {
  if (!shards_sequence()) {
    all_reduce(partial);
    if (!out.aliases(partial)) out.copy_from(partial);
    return;
  }
  const int64_t B = partial.dim(0), N = partial.dim(1), D = partial.dim(2), C = N / size;
  LINPAR_CHECK(out.shape() == Shape({B, C, D}), "reduce_partial: {} into {}",
               shape_string(partial.shape()), shape_string(out.shape()));
  Tensor blocks = Tensor::empty({size, B, 1, C, D}, partial.dtype(), partial.device());
  sequence_to_blocks(partial.reshape({B, 1, N, D}), blocks);
  group->reduce_scatter(blocks, out);
}

}  // namespace linpar
