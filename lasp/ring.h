// LASP (Sun et al., "Linear Attention Sequence Parallelism", arXiv 2404.02882,
// Algorithms 2 and 3): the SP ranks form a chain over the sequence's chunks and
// pass the d_k×d_v KV state of every head along it. Forward on rank r:
//   1. post the receive of KV_{r−1} from rank r−1, then compute what needs no
//      other rank while it is in flight: the intra-chunk output and the chunk's
//      own state contribution S_r (one lightning-attention call without KV_in);
//   2. wait for KV_{r−1} (rank 0 has none), add O_inter = Λ_C Q_r KV_{r−1};
//   3. send KV_r = λ^C KV_{r−1} + S_r to rank r+1 (the last rank sends nothing)
//      and keep KV_{r−1} for backward (state caching: backward neither
//      recomputes nor re-receives it).
// Backward runs the chain the other way: post the receive of dKV_r from rank
// r+1, compute the intra-chunk gradients and the inter-chunk terms that need
// only the cached KV_{r−1}, then add dKV_r's terms to dK and dV and send
// dKV_{r−1} = λ^C dKV_r + (Λ_C Q_r)ᵀ dO_r to rank r−1.
// Traffic per layer and micro-batch: T−1 messages of B·H·d_k·d_v elements each
// way, independent of the sequence length.
#pragma once

#include <memory>
#include <vector>

#include "core/communicator.h"
#include "model/sequence_parallel.h"

namespace linpar::lasp {

// Sends still in flight with the buffers they read; completed before the next
// call sends again (and by the destructor), so a sender never waits for its
// receiver inside the call that sent.
class PendingSends {
 public:
  void add(std::unique_ptr<CommRequest> request, Tensor buffer);
  void wait_all();
  ~PendingSends() { wait_all(); }

 private:
  std::vector<std::pair<std::unique_ptr<CommRequest>, Tensor>> pending_;
};

class LaspRing final : public SequenceAttention {
 public:
  explicit LaspRing(Communicator& sp) : sp_(sp) {}
  std::string kind() const override { return "lasp"; }
  void forward(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<double>& slopes,
               int64_t block, Tensor& o, AttentionCache& cache) const override;
  void recompute(const Tensor& q, const Tensor& k, const Tensor& v,
                 const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                 Tensor& o) const override;
  bool keeps_cache_under_full_recompute() const override { return true; }
  void backward(const Tensor& q, const Tensor& k, const Tensor& v,
                const std::vector<double>& slopes, int64_t block, const AttentionCache& cache,
                const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv) const override;

 private:
  Communicator& sp_;
  mutable PendingSends sends_;
};

}  // namespace linpar::lasp
