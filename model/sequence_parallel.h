// Sequence parallelism as the model's layers see it: the sequence of every
// sample is split into T contiguous chunks of C = N/T tokens, rank r of the SP
// group holding positions [r·C, (r+1)·C). Everything but the attention is
// token-local, so only the token mixer's linear attention needs the other
// chunks; how it gets them (LASP's ring of KV states, LASP-2's all-gather of
// states, all-gather of K and V, Ulysses' all-to-all) is a SequenceAttention
// strategy, implemented in lasp/ over the SP communicator. model/ only calls
// the interface (folders depend one way: model ← parallel ← lasp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace linpar {

// What a strategy's forward keeps for its backward, per layer and micro-batch
// (LASP: the state received from rank r−1, so backward neither recomputes nor
// re-receives it).
struct AttentionCache {
  std::vector<Tensor> saved;
};

class SequenceAttention {
 public:
  virtual ~SequenceAttention() = default;
  virtual std::string kind() const = 0;

  // q, k: [B, H, C, dk], v: [B, H, C, dv] of this rank's chunk; slopes: H values
  // -> o: [B, H, C, dv], the chunk's rows of lightning attention over the
  // whole sequence.
  virtual void forward(const Tensor& q, const Tensor& k, const Tensor& v,
                       const std::vector<double>& slopes, int64_t block, Tensor& o,
                       AttentionCache& cache) const = 0;
  // Recomputation (model/recompute.h): o again from this chunk's q, k, v and
  // what forward kept in `cache`, before the layer's backward. What forward
  // received from the other ranks is in the cache, so the strategies that
  // can rebuild o on this rank alone communicate nothing here (LASP's
  // "state caching"); Ulysses sends its output back to the sequence layout
  // again.
  virtual void recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                         const std::vector<double>& slopes, int64_t block,
                         const AttentionCache& cache, Tensor& o) const = 0;
  // Under full recomputation, whether forward's cache is kept for
  // recompute() (LASP and LASP-2: one received state, d×d a head), or
  // dropped and forward run again with its communication (all-gather keeps
  // the whole sequence's K and V, Ulysses its head-layout q, k, v: as large
  // as the layer's own activations).
  virtual bool keeps_cache_under_full_recompute() const = 0;
  // d_o: [B, H, C, dv] -> dq, dk, dv of this chunk (overwritten): the gradient
  // of the whole sequence's loss, including what later chunks contribute.
  virtual void backward(const Tensor& q, const Tensor& k, const Tensor& v,
                        const std::vector<double>& slopes, int64_t block,
                        const AttentionCache& cache, const Tensor& d_o, Tensor& dq, Tensor& dk,
                        Tensor& dv) const = 0;
};

// `--sp-kind`: which strategy joins the chunks (PARALLEL.md).
enum class SequenceParallelKind { Lasp, Lasp2, AllGather, Ulysses };
// UserError naming the value and the choices.
SequenceParallelKind parse_sp_kind(const std::string& name);
const char* sp_kind_name(SequenceParallelKind kind);

class Communicator;
// Builds the strategy over the SP communicator (lasp/ provides one; the
// trainer receives it so that parallel/ does not depend on lasp/).
using SequenceAttentionFactory =
    std::function<std::unique_ptr<SequenceAttention>(SequenceParallelKind, Communicator& sp)>;

struct SequenceParallel {
  const SequenceAttention* attention = nullptr;  // null: the whole sequence on this rank
  int rank = 0;
  int size = 1;
  // Global position of this rank's first token for a chunk of `length` tokens.
  int64_t position_offset(int64_t length) const { return rank * length; }
};

}  // namespace linpar
