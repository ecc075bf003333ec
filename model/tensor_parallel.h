// Tensor parallelism as the model's layers see it (Megatron-LM, Shoeybi et al.
// 2019): which shard this rank holds and the group to reduce partial results
// over. Column-parallel layers (qkvu_proj, SGLU l1/l2) need no communication in
// forward and an all-reduce of their input gradient in backward; row-parallel
// layers (out_proj, l3) all-reduce their output in forward. SRMSNorm has no
// weights, so nothing replicated needs its gradient synchronised: the residual
// stream and its norms are computed identically on every TP rank.
#pragma once

#include "core/communicator.h"
#include "core/error.h"
#include "model/config.h"

namespace linpar {

struct TensorParallel {
  Communicator* group = nullptr;  // null: one rank
  int rank = 0;
  int size = 1;

  // Sum / maximum over the group, in place (no-ops on one rank).
  void all_reduce(Tensor& t) const {
    if (size > 1) group->all_reduce(t);
  }
  void all_reduce_max(Tensor& t) const {
    if (size > 1) group->all_reduce_max(t);
  }
  // This rank's block [rank·n/size, (rank+1)·n/size) of n.
  int64_t block(int64_t n) const { return n / size; }
  int64_t block_offset(int64_t n) const { return rank * (n / size); }
};

// UserError naming the dimension that tp does not divide.
inline void validate_tensor_parallel(const ModelConfig& c, int64_t tp) {
  if (c.n_heads % tp != 0) user_error("--tp {}: heads {} must be divisible by tp", tp, c.n_heads);
  if (c.glu_dim % tp != 0) user_error("--tp {}: glu-dim {} must be divisible by tp", tp, c.glu_dim);
  if (c.vocab_size % tp != 0)
    user_error("--tp {}: vocab-size {} must be divisible by tp", tp, c.vocab_size);
}

}  // namespace linpar
