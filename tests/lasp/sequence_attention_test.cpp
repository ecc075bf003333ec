// Every sequence-parallel strategy, on its own: T ranks each holding a chunk
// of the same random Q, K, V give exactly the chunk's rows of lightning
// attention over the whole sequence, forward and backward (dQ, dK, dV of the
// whole sequence's loss), for chunks that are not multiples of the attention
// block, one token per rank, decays near 0 and near 1, f64 and f32.
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/op_stats.h"
#include "core/ops/lightning_attention.h"
#include "gradcheck.h"
#include "lasp/factory.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "parallel/communicator.h"

namespace linpar {

using testing::random_tensor;

namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Consecutive world ranks in groups of T.
MpiCommunicator sp_group(int T) {
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() / T, world_rank() % T, &comm);
  return MpiCommunicator(comm, "sp");
}

// Tokens [begin, begin + C) of a [B, H, N, d] tensor.
Tensor chunk(const Tensor& t, int64_t begin, int64_t C) {
  const int64_t B = t.dim(0), H = t.dim(1), N = t.dim(2), d = t.dim(3);
  Tensor out = Tensor::empty({B, H, C, d}, t.dtype());
  const size_t row = static_cast<size_t>(d) * dtype_size(t.dtype());
  for (int64_t bh = 0; bh < B * H; ++bh) {
    std::memcpy(static_cast<char*>(out.raw_data()) + static_cast<size_t>(bh * C) * row,
                static_cast<const char*>(t.raw_data()) + static_cast<size_t>(bh * N + begin) * row,
                static_cast<size_t>(C) * row);
  }
  return out;
}

double max_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to(DType::F64).to_vector<double>(),
                            y = b.to(DType::F64).to_vector<double>();
  double worst = 0, scale = 1e-300;
  for (size_t i = 0; i < x.size(); ++i) {
    scale = std::max(scale, std::abs(x[i]));
    worst = std::max(worst, std::abs(x[i] - y[i]));
  }
  return worst / scale;
}

struct Case {
  int64_t batch, heads, length, dk, dv, block;
  double slope;  // first head's; the others spread over decades below it
};

void check_strategy(SequenceParallelKind kind, int T, const Case& c, DType dtype) {
  MpiCommunicator sp = sp_group(T);
  const int r = sp.rank();
  const int64_t C = c.length / T;
  std::vector<double> slopes;
  for (int64_t h = 0; h < c.heads; ++h) slopes.push_back(c.slope * std::pow(0.1, static_cast<double>(h)));
  // The same full-sequence tensors on every rank (the RNG is counter-based).
  Tensor q = random_tensor({c.batch, c.heads, c.length, c.dk}, 11, 1.0, dtype);
  Tensor k = random_tensor({c.batch, c.heads, c.length, c.dk}, 12, 1.0, dtype);
  Tensor v = random_tensor({c.batch, c.heads, c.length, c.dv}, 13, 1.0, dtype);
  Tensor d_o = random_tensor({c.batch, c.heads, c.length, c.dv}, 14, 1.0, dtype);
  Tensor o = Tensor::empty(v.shape(), dtype), dq = Tensor::empty(q.shape(), dtype),
         dk = Tensor::empty(k.shape(), dtype), dv = Tensor::empty(v.shape(), dtype), none;
  lightning_attention_forward(q, k, v, slopes, c.block, none, o, none);
  lightning_attention_backward(q, k, v, slopes, c.block, none, d_o, none, dq, dk, dv, none);

  auto attention = lasp::make_sequence_attention(kind, sp);
  Tensor qc = chunk(q, r * C, C), kc = chunk(k, r * C, C), vc = chunk(v, r * C, C);
  Tensor oc = Tensor::empty(vc.shape(), dtype);
  AttentionCache cache;
  // Twice, as two layers would: the ring's pending sends and the caches of
  // successive calls must not interfere.
  for (int repeat = 0; repeat < 2; ++repeat) attention->forward(qc, kc, vc, slopes, c.block, oc, cache);
  Tensor dqc = Tensor::empty(qc.shape(), dtype), dkc = Tensor::empty(kc.shape(), dtype),
         dvc = Tensor::empty(vc.shape(), dtype);
  attention->backward(qc, kc, vc, slopes, c.block, cache, chunk(d_o, r * C, C), dqc, dkc, dvc);

  const double tolerance = dtype == DType::F64 ? 1e-12 : 2e-5;
  const std::string what = fmt::format("{} T={} rank {} N={} block {} slope {} {}",
                                       sp_kind_name(kind), T, r, c.length, c.block, c.slope,
                                       dtype_name(dtype));
  EXPECT_LT(max_difference(chunk(o, r * C, C), oc), tolerance) << "o " << what;
  EXPECT_LT(max_difference(chunk(dq, r * C, C), dqc), tolerance) << "dq " << what;
  EXPECT_LT(max_difference(chunk(dk, r * C, C), dkc), tolerance) << "dk " << what;
  EXPECT_LT(max_difference(chunk(dv, r * C, C), dvc), tolerance) << "dv " << what;
}

void check_all(const std::vector<SequenceParallelKind>& kinds, int T) {
  // Chunks of 7 and 12 tokens against blocks of 4 and 5 (partial blocks), one
  // token per rank, a chunk shorter than the block; slopes 8 (λ ≈ 3e-4: the
  // decay near 0) and 1e-6 (λ ≈ 1: near 1). Ulysses needs heads divisible by T.
  const int64_t H = T;
  const std::vector<Case> cases = {{2, H, 7 * T, 6, 4, 4, 8.0},    {1, H, 12 * T, 5, 3, 5, 1e-6},
                                   {2, H, T, 4, 4, 4, 0.5},        {1, 2 * H, 3 * T, 4, 2, 8, 0.3}};
  for (SequenceParallelKind kind : kinds) {
    for (const Case& c : cases) {
      for (DType dtype : {DType::F64, DType::F32}) check_strategy(kind, T, c, dtype);
    }
  }
}

const std::vector<SequenceParallelKind> kAllKinds = {
    SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2, SequenceParallelKind::AllGather,
    SequenceParallelKind::Ulysses};

}  // namespace

TEST(SequenceAttentionNp2, EveryKindEqualsLightningAttentionT2) { check_all(kAllKinds, 2); }
TEST(SequenceAttentionNp4, EveryKindEqualsLightningAttentionT2) { check_all(kAllKinds, 2); }
TEST(SequenceAttentionNp4, EveryKindEqualsLightningAttentionT4) { check_all(kAllKinds, 4); }
TEST(SequenceAttentionNp8, EveryKindEqualsLightningAttentionT8) { check_all(kAllKinds, 8); }

// The op plan of a model whose attention runs through a strategy names the
// strategy's ops, and its FLOPs equal what forward and backward count on
// every rank (ranks differ: LASP's first rank has no incoming state,
// all-gather's later ranks form longer prefixes).
TEST(SequenceAttentionNp4, PlannedFlopsEqualCountedFlopsForEveryKind) {
  MpiCommunicator sp = sp_group(4);
  for (SequenceParallelKind kind : kAllKinds) {
    auto attention = lasp::make_sequence_attention(kind, sp);
    ModelConfig c = preset_config("tnl-tiny");
    c.attention_block = 4;
    TransNormerLLM model(c, 1, DType::F32, {}, nullptr,
                         SequenceParallel{attention.get(), sp.rank(), sp.size()});
    const int64_t B = 2, C = 7;
    std::vector<int32_t> ids(static_cast<size_t>(B * C));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + sp.rank()) % 11);
    Tensor inputs = Tensor::from_vector<int32_t>({B, C}, ids), targets = inputs.clone();
    TransNormerLLM::Cache cache;
    FlopScope scope;
    model.forward(inputs, targets, cache);
    model.backward(cache, 1.0);
    const OpPlan plan =
        plan_model(c, {}, SequencePlan{kind, sp.rank(), sp.size(), lasp::make_sequence_attention},
                   StepShape{B, C, 4});
    EXPECT_EQ(plan.total_flops(), scope.flops()) << sp_kind_name(kind) << " rank " << sp.rank();
    bool named = false;
    for (const PlannedOp& op : plan.ops()) named |= op.name.find(sp_kind_name(kind)) != std::string::npos;
    EXPECT_TRUE(named) << sp_kind_name(kind);
  }
}

}  // namespace linpar
