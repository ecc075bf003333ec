// Tensor parallelism as the model's layers see it (Megatron-LM, Shoeybi et al.
// 2019): which shard this rank holds and the group to reduce partial results
// over. Column-parallel layers (qkvu_proj, SGLU l1/l2) need no communication in
// forward and an all-reduce of their input gradient in backward; row-parallel
// layers (out_proj, l3) all-reduce their output in forward. SRMSNorm has no
// weights, so nothing replicated needs its gradient synchronised: the residual
// stream and its norms are computed identically on every TP rank.
//
// Megatron sequence parallelism (`--tp-sp`, Korthikanti et al. 2022, §4.2.2):
// the residual stream and its norms live on sequence shards [B, N/tp, D]
// instead of being replicated; an all-gather along the sequence enters each
// column-parallel block and a reduce-scatter leaves each row-parallel one
// (in place of the all-reduce), and backward swaps the two. SRMSNorm has no
// weights, so no norm gradient needs the all-reduce Megatron does for
// LayerNorm weights under SP. Backward re-gathers a block's input for its
// weight gradient, as Megatron does, rather than keeping the gathered copy.
#pragma once

#include "core/communicator.h"
#include "core/error.h"
#include "model/config.h"
#include "model/op_plan.h"

namespace linpar {

struct TensorParallel {
  Communicator* group = nullptr;  // null: one rank
  int rank = 0;
  int size = 1;
  bool sequence_parallel = false;  // --tp-sp (only meaningful with size > 1)

  bool shards_sequence() const { return sequence_parallel && size > 1; }
  // Tokens per sample of the residual stream on this rank for n tokens.
  int64_t stream_length(int64_t n) const { return shards_sequence() ? n / size : n; }
  // The inverse: tokens per sample once the stream's `n` are gathered.
  int64_t gathered_length(int64_t n) const { return shards_sequence() ? n * size : n; }
  // x [B, n/tp, D] -> [B, n, D] by an all-gather along the sequence; x itself
  // without sequence parallelism.
  Tensor gather_sequence(const Tensor& x) const;
  // partial [B, n, D] holds this rank's part of a sum over the group; out gets
  // the residual-stream layout of the sum: [B, n, D] by all-reduce (out may be
  // partial itself) or this rank's [B, n/tp, D] by reduce-scatter.
  void reduce_partial(Tensor& partial, Tensor& out) const;

  // Sum / maximum over the group, in place (no-ops on one rank).
  void all_reduce(Tensor& t) const {
    if (size > 1) group->all_reduce(t);
  }
  void all_reduce_max(Tensor& t) const {
    if (size > 1) group->all_reduce_max(t);
  }
  // The collectives the calls above make, for the op plan (none on one rank;
  // bytes as the communicator counts its payload: an all-reduce's buffer, an
  // all-gather's input, a reduce-scatter's output).
  std::vector<PlannedCollective> plan_all_reduce(int64_t bytes) const {
    if (size <= 1) return {};
    return {{CollectiveKind::AllReduce, CommGroup::Tp, bytes}};
  }
  // gather_sequence of a full [B, n, D] activation of `full_bytes`.
  std::vector<PlannedCollective> plan_gather_sequence(int64_t full_bytes) const {
    if (!shards_sequence()) return {};
    return {{CollectiveKind::AllGather, CommGroup::Tp, full_bytes / size}};
  }
  // reduce_partial of a full [B, n, D] partial sum of `full_bytes`.
  std::vector<PlannedCollective> plan_reduce_partial(int64_t full_bytes) const {
    if (size <= 1) return {};
    if (shards_sequence())
      return {{CollectiveKind::ReduceScatter, CommGroup::Tp, full_bytes / size}};
    return {{CollectiveKind::AllReduce, CommGroup::Tp, full_bytes}};
  }

  // The bytes gather_sequence and reduce_partial each move through memory
  // beside their collective, for a full [B, n, D] activation of
  // `full_bytes`: under --tp-sp the copy between the collective's rank-major
  // blocks and the sequence (read and written once); none otherwise.
  int64_t plan_layout_copy(int64_t full_bytes) const { return shards_sequence() ? full_bytes : 0; }

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
