// The per-GPU memory model on a small model whose every term is computed by
// hand below: 2 layers, width D = 64, 4 heads of d = 16, SGLU F = 128,
// vocabulary V = 256, no LRPE, untied head. Parameters: per layer
// 4D² + D² + 3DF = 45056, embedding and head V·D = 16384 each, P = 122880.
// Unless a test says otherwise: bf16 (e = 2; stats and states f32), 2 samples
// of 128 tokens per micro-batch (256 tokens), 4 micro-batches, 1F1B.
//
// Per token of one layer's cache (tp = sp = 1, bytes):
//   norms 2·D·2 = 256, their rstd 2·4 = 8;
//   token mixer qkvu 4D + q, k, v 3D + u, norm, gated 3D = 10·64·2 = 1280,
//   attention rstd 4;  SGLU a1, a2, gated 3·F·2 = 768
//   -> 2316.
// Per token of the last stage's head: final norm 128, rstd 4, logits 512,
// row_max and sum_exp 8 -> 652; tokens and targets (i32) 8 on every stage.
#include "sim/memory.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include "core/error.h"
#include "model/recompute.h"
#include "model/transnormer.h"
#include "sim/step.h"

namespace linpar::sim {

namespace {

ModelConfig small() {
  ModelConfig m;
  m.n_layers = 2;
  m.width = 64;
  m.n_heads = 4;
  m.glu_dim = 128;
  m.vocab_size = 256;
  m.lrpe = LrpeLayers::None;
  m.tie_embeddings = false;
  return m;
}

MemoryLayout base() {
  MemoryLayout l;
  l.seq_len = 128;
  l.micro_batch = 2;
  l.global_batch = 8;  // 4 micro-batches
  l.element_bytes = 2;
  l.schedule = PipelineSchedule::OneFOneB;
  return l;
}

constexpr int64_t P = 122880;

}  // namespace

TEST(Memory, SmallModelParameterCount) {
  EXPECT_EQ(small().parameter_count(), P);
  EXPECT_EQ(stage_parameters(small(), 0, 1, 1), P);
}

// One GPU, bf16: weights P·(4 + 2), gradients P·4, AdamW P·8.
// Activations: one micro-batch in flight (1F1B, one stage) of
//   (2·2316 + 652 + 8)·256 = 5292·256 = 1354752.
// Workspace, the largest backward: token mixer of a layer:
//   d_norm, dx of the stream 2·256·64·2 = 65536
//   + held d_gated, du, d_norm, d_attention, dv (5·D) and dq, dk (2·D)
//     = 256·7·64·2 = 229376, row dots 256·4 = 1024
//   + at the end d_qkvu 256·4·64·2 = 131072 (more than the attention kernel's
//     states during the attention: 2·2·4·1·16·16·4 = 16384)
//   = 427008 (the head's d_logits + d_norm, dx = 131072 + 65536 is smaller).
// No communication buffers (DDP's buckets are the gradients).
TEST(Memory, NoParallelism) {
  const MemoryBreakdown b = memory_per_gpu(small(), base());
  EXPECT_EQ(b.parameters, P * 6);
  EXPECT_EQ(b.gradients, P * 4);
  EXPECT_EQ(b.optimizer_state, P * 8);
  EXPECT_EQ(b.activation_bytes_per_micro_batch, 1354752);
  EXPECT_EQ(b.micro_batches_in_flight, 1);
  EXPECT_EQ(b.activations, 1354752);
  EXPECT_EQ(b.workspace, 427008);
  EXPECT_EQ(b.communication_buffers, 0);
  EXPECT_EQ(b.co2_state, 0);
  EXPECT_EQ(b.total, 737280 + 491520 + 983040 + 1354752 + 427008);
}

// The trainer runs its schedule even on one stage: GPipe keeps all 4 caches.
TEST(Memory, GPipeOnOneStageKeepsEveryMicroBatch) {
  MemoryLayout l = base();
  l.schedule = PipelineSchedule::GPipe;
  const MemoryBreakdown b = memory_per_gpu(small(), l);
  EXPECT_EQ(b.micro_batches_in_flight, 4);
  EXPECT_EQ(b.activations, 4 * 1354752);
}

// f32 on one rank, no recompute: the cache is activation_elements_per_token
// elements of 4 bytes per token, plus 4 per token the Cache holds and that
// count leaves out: row_max and sum_exp (f32) and tokens and targets (i32).
TEST(Memory, AgreesWithTheModelsActivationCount) {
  for (const LrpeLayers lrpe : {LrpeLayers::None, LrpeLayers::First, LrpeLayers::All}) {
    ModelConfig m = small();
    m.lrpe = lrpe;
    MemoryLayout l = base();
    l.element_bytes = 4;
    EXPECT_EQ(activation_bytes_per_micro_batch(m, l),
              (activation_elements_per_token(m) + 4) * 2 * 128 * 4);
  }
  const ModelConfig m = preset_config("tnl-385m");
  MemoryLayout l;
  l.seq_len = 2048;
  l.micro_batch = 1;
  l.element_bytes = 4;
  EXPECT_EQ(activation_bytes_per_micro_batch(m, l),
            (activation_elements_per_token(m) + 4) * 2048 * 4);
}

// tp = 2 shards heads, SGLU and vocabulary: per token of a layer
//   norms 256 + 8 (replicated), token mixer 10·32·2 = 640 + rstd 4 (rows are
//   whole), SGLU 3·64·2 = 384 -> 1292; head 128 + 4 + logits 128·2 + 8 = 396,
//   tokens 8: (2·1292 + 404)·256 = 764928.
// --tp-sp also splits the residual stream (norms, rstd, final norm) 2 ways:
//   layer 128 + 4 + 644 + 384 = 1160, head 64 + 2 + 256 + 8 = 330, tokens 8:
//   (2·1160 + 338)·256 = 680448.
// Weights P/2 each. Workspace (token mixer): without --tp-sp
//   65536 + 256·(7·32·2 + 4) + 256·4·32·2 = 65536 + 115712 + 65536 = 246784;
// with it the stream halves (2·128·64·2 = 32768) but backward gathers the
// block's input (256·64·2 = 32768) and ends with the [B, N, D] partial and its
// reduce-scatter blocks (2·32768): 65536 + 115712 + 65536 + 65536 = 312320.
TEST(Memory, TensorParallelWithAndWithoutSequenceParallelism) {
  MemoryLayout l = base();
  l.tp = 2;
  const MemoryBreakdown tp = memory_per_gpu(small(), l);
  EXPECT_EQ(tp.parameters, P / 2 * 6);
  EXPECT_EQ(tp.gradients, P / 2 * 4);
  EXPECT_EQ(tp.optimizer_state, P / 2 * 8);
  EXPECT_EQ(tp.activations, 764928);
  EXPECT_EQ(tp.workspace, 246784);
  EXPECT_EQ(tp.communication_buffers, 0);
  l.tp_sp = true;
  const MemoryBreakdown tp_sp = memory_per_gpu(small(), l);
  EXPECT_EQ(tp_sp.parameters, tp.parameters);
  EXPECT_EQ(tp_sp.activations, 680448);
  EXPECT_EQ(tp_sp.workspace, 312320);
}

// sp = 2: each rank caches its 64-token chunk, 5292·128 = 677376, plus per
// layer what its strategy saves (rank r > 0). A KV state [B, H, d, d] f32 is
// 2·4·16·16·4 = 8192.
//   LASP: KV_{r−1}: 2·8192 -> 693760.
//   LASP-2: the prefix state it forms, one per layer, the same 693760 (its
//     gather of all T states is freed when forward returns).
//   all-gather: the state + K and V of all 128 tokens 2·4·128·32·2 = 65536:
//     2·73728 -> 824832.
//   Ulysses: q, k, v head-sharded over the whole sequence, as large as the
//     chunk's: 2·4·64·48·2 = 49152 per layer -> 775680.
// LASP holds its last sent state (8192) between calls.
TEST(Memory, SequenceParallelKinds) {
  MemoryLayout l = base();
  l.sp = 2;
  const std::pair<SequenceParallelKind, int64_t> expected[] = {
      {SequenceParallelKind::Lasp, 693760},
      {SequenceParallelKind::Lasp2, 693760},
      {SequenceParallelKind::AllGather, 824832},
      {SequenceParallelKind::Ulysses, 775680}};
  for (const auto& [kind, activations] : expected) {
    l.sp_kind = kind;
    const MemoryBreakdown b = memory_per_gpu(small(), l);
    EXPECT_EQ(b.activations, activations) << sp_kind_name(kind);
    EXPECT_EQ(b.parameters, P * 6) << sp_kind_name(kind);  // SP replicates the weights
    EXPECT_EQ(b.communication_buffers, kind == SequenceParallelKind::Lasp ? 8192 : 0)
        << sp_kind_name(kind);
  }
  l.sp = 8;
  l.sp_kind = SequenceParallelKind::Ulysses;  // 4 heads over 8 ranks
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
}

// ZeRO-1 over dp = 4: AdamW keeps m, v of a 30720-element shard: 2·30720·4 =
// 245760 (DDP: P·8 = 983040). Its buffers: the values and gradients are
// views of its two flat vectors of 4·30720 elements, reduced and gathered in
// place: only their padding beyond P = 122880 = 4·30720, none here (DDP:
// none either, its buckets are the gradients).
// The ZeRO group is the data-parallel one, dp·sp: dp 2 × sp 2 shards 4 ways too.
TEST(Memory, ZeroOneShardsTheOptimizerState) {
  MemoryLayout l = base();
  l.dp = 4;
  const MemoryBreakdown ddp = memory_per_gpu(small(), l);
  EXPECT_EQ(ddp.optimizer_state, 983040);
  EXPECT_EQ(ddp.communication_buffers, 0);
  l.zero = 1;
  const MemoryBreakdown zero = memory_per_gpu(small(), l);
  EXPECT_EQ(zero.optimizer_state, 245760);
  EXPECT_EQ(zero.communication_buffers, 0);
  EXPECT_LT(zero.total, ddp.total);
  EXPECT_EQ(zero.parameters, ddp.parameters);
  EXPECT_EQ(zero.gradients, ddp.gradients);
  l.dp = 2;
  l.sp = 2;
  EXPECT_EQ(memory_per_gpu(small(), l).optimizer_state, 245760);
}

// pp = 2: one layer per stage, stage 0 with the embedding, stage 1 with the
// head, P/2 parameters each. One micro-batch's cache: stage 0
// (2316 + 8)·256 = 594944, stage 1 (2316 + 652 + 8)·256 = 761856.
// In flight with m = 4: GPipe 4 on both; 1F1B min(2 − s, 4): 2 and 1.
// Buffers: every activation sent (stage 0) or gradient sent back (stage 1)
// lives to the step's end, 4 of [2, 128, 64] bf16 = 4·32768, plus the one
// being received: 163840 on each stage.
TEST(Memory, PipelineStagesGPipeAndOneFOneB) {
  MemoryLayout l = base();
  l.pp = 2;
  for (const auto schedule : {PipelineSchedule::GPipe, PipelineSchedule::OneFOneB}) {
    l.schedule = schedule;
    const bool gpipe = schedule == PipelineSchedule::GPipe;
    l.stage = 0;
    const MemoryBreakdown first = memory_per_gpu(small(), l);
    EXPECT_EQ(first.parameters, P / 2 * 6);
    EXPECT_EQ(first.activation_bytes_per_micro_batch, 594944);
    EXPECT_EQ(first.micro_batches_in_flight, gpipe ? 4 : 2);
    EXPECT_EQ(first.activations, (gpipe ? 4 : 2) * 594944);
    EXPECT_EQ(first.communication_buffers, 163840);
    l.stage = 1;
    const MemoryBreakdown last = memory_per_gpu(small(), l);
    EXPECT_EQ(last.parameters, P / 2 * 6);
    EXPECT_EQ(last.activation_bytes_per_micro_batch, 761856);
    EXPECT_EQ(last.micro_batches_in_flight, gpipe ? 4 : 1);
    EXPECT_EQ(last.activations, (gpipe ? 4 : 1) * 761856);
    EXPECT_EQ(last.communication_buffers, 163840);
    // Same weights and workspace: the busiest stage is the one with more cached.
    EXPECT_EQ(busiest_stage_memory(small(), l).total, gpipe ? last.total : first.total);
  }
  EXPECT_EQ(micro_batches_in_flight(PipelineSchedule::OneFOneB, 0, 4, 2), 2);  // min(4, m)
  EXPECT_EQ(micro_batches_in_flight(PipelineSchedule::OneFOneB, 1, 4, 8), 3);
  // Interleaved, by hand from the order in pipeline_test's
  // InterleavedOrderIsMegatrons (stage 0 of 2, 2 chunks, 4 micro-batches):
  // chunk caches of 10 and 100 bytes peak at F(0,0) F(1,0) F(0,1) F(1,1)
  // F(2,0) = 230 (and again later), 5 chunk passes.
  MemoryBreakdown interleaved;
  fill_activations(interleaved, PipelineSchedule::OneFOneB, 0, 2, {10, 100}, 4);
  EXPECT_EQ(interleaved.activations, 230);
  EXPECT_EQ(interleaved.micro_batches_in_flight, 5);
  EXPECT_EQ(interleaved.activation_bytes_per_micro_batch, 110);
  // One chunk: the cache times 1F1B's min(pp − stage, m).
  MemoryBreakdown plain;
  fill_activations(plain, PipelineSchedule::OneFOneB, 0, 2, {10}, 4);
  EXPECT_EQ(plain.activations, 20);
  EXPECT_EQ(plain.micro_batches_in_flight, 2);
  // The most cached at once in the order the trainer runs the actions.
  for (PipelineSchedule schedule : {PipelineSchedule::GPipe, PipelineSchedule::OneFOneB}) {
    for (int stages : {1, 2, 5}) {
      for (int64_t m : {1, 3, 4, 9}) {
        for (int s = 0; s < stages; ++s) {
          int64_t live = 0, most = 0;
          for (const PipelineAction& a : pipeline_actions(schedule, s, stages, m)) {
            live += a.backward ? -1 : 1;
            most = std::max(most, live);
          }
          EXPECT_EQ(micro_batches_in_flight(schedule, s, stages, m), most)
              << "stage " << s << " of " << stages << ", " << m << " micro-batches";
        }
      }
    }
  }
}

// Full: each layer keeps its input [2, 128, 64] bf16 = 32768: 2·32768 plus the
// head and tokens 660·256 = 168960 -> 234496; its backward rebuilds the whole
// layer cache 2316·256 = 592896 on top of the 427008 workspace -> 1019904.
// Selective: drops q, k, v, u, attention_norm, 5·64·2 = 640 per token and
// layer: (2·(2316 − 640) + 660)·256 = 1027072; the backward rebuilds one
// layer's 640·256 = 163840 -> 590848.
TEST(Memory, Recomputation) {
  MemoryLayout l = base();
  l.recompute = Recompute::Full;
  const MemoryBreakdown full = memory_per_gpu(small(), l);
  EXPECT_EQ(full.activations, 234496);
  EXPECT_EQ(full.workspace, 1019904);
  l.recompute = Recompute::Selective;
  const MemoryBreakdown selective = memory_per_gpu(small(), l);
  EXPECT_EQ(selective.activations, 1027072);
  EXPECT_EQ(selective.workspace, 590848);
  // Full with LASP (sp = 2) keeps the layer input of its 64-token chunk
  // 2·64·64·2 = 16384 and the received state 8192 per layer; the head and
  // tokens 660·128 = 84480: 2·24576 + 84480 = 133632.
  l.recompute = Recompute::Full;
  l.sp = 2;
  EXPECT_EQ(memory_per_gpu(small(), l).activations, 133632);
}

TEST(Memory, RecomputeNames) {
  EXPECT_EQ(recompute_from_name("selective"), Recompute::Selective);
  EXPECT_STREQ(recompute_name(Recompute::Full), "full");
  EXPECT_STREQ(recompute_name(recompute_from_name("none")), "none");
  try {
    recompute_from_name("some");
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "--recompute some: expected none, selective or full");
  }
}

// CO2 over dp = 4 keeps on the host round_start_, the pseudo-gradient in
// flight, the global point and the outer momentum, P f32 each: 4·P·4 = 1966080;
// sharded, the last two and the reduce-scatter's block are P/4 each:
// (2·122880 + 3·30720)·4 = 1351680. The host state is not in the device total.
TEST(Memory, Co2OuterStateIsHostMemory) {
  MemoryLayout l = base();
  l.dp = 4;
  l.co2_tau = 4;
  const MemoryBreakdown co2 = memory_per_gpu(small(), l);
  EXPECT_EQ(co2.co2_state, 1966080);
  EXPECT_EQ(co2.communication_buffers, 0);
  EXPECT_EQ(co2.optimizer_state, P * 8);
  EXPECT_EQ(co2.total,
            co2.parameters + co2.gradients + co2.optimizer_state + co2.activations + co2.workspace);
  l.co2_shard_outer = true;
  EXPECT_EQ(memory_per_gpu(small(), l).co2_state, 1351680);
  l.sp = 2;  // LASP's last sent state only
  EXPECT_EQ(memory_per_gpu(small(), l).communication_buffers, 8192);
  l.zero = 1;
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
}

TEST(Memory, OverflowMessage) {
  MemoryBreakdown b;
  b.total = static_cast<int64_t>(93.4 * 1024 * 1024 * 1024);
  EXPECT_FALSE(fits(b, gpu_preset("h100")));
  EXPECT_EQ(memory_overflow_message(b, gpu_preset("h100")),
            "needs 93.4 GiB per GPU, h100 has 80 GiB");
  EXPECT_TRUE(fits(b, gpu_preset("h200")));
  EXPECT_EQ(memory_overflow_message(b, gpu_preset("h200")), "");
  // 7B on one GPU: 18 bytes of weights, gradients and moments per parameter alone.
  MemoryLayout l;
  const MemoryBreakdown seven = memory_per_gpu(preset_config("tnl-7b"), l);
  EXPECT_EQ(seven.parameters + seven.gradients + seven.optimizer_state,
            18 * preset_config("tnl-7b").parameter_count());
  EXPECT_EQ(memory_overflow_message(seven, gpu_preset("h100")).rfind("needs ", 0), 0u);
}

TEST(Memory, RejectsImpossibleLayouts) {
  MemoryLayout l = base();
  l.tp = 3;  // 4 heads
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
  l = base();
  l.pp = 3;  // 2 layers
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
  l = base();
  l.pp = 2;
  l.stage = 2;
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
  l = base();
  l.sp = 3;  // 128 tokens
  EXPECT_THROW(memory_per_gpu(small(), l), UserError);
}

// A real CPU forward in f32: what it leaves allocated (the Cache) against the
// prediction. The CPU allocator counts nothing itself (core/allocator.h), so
// this reads glibc's heap statistics: bytes in use in the main arena plus
// mmapped chunks (the cache's tensors are allocated on this thread). A first
// forward initialises whatever is allocated once; the second is measured
// (it lands within 0.2% of the prediction: malloc headers and alignment; 3%
// would still catch one forgotten [B, N, D] tensor per layer).
// Tokens and targets are the caller's tensors on the CPU (the Cache shares
// them), so they are left out of the prediction here.
TEST(Memory, PredictsTheCacheOfARealForward) {
#if !defined(__GLIBC__) || !(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  GTEST_SKIP() << "needs glibc's mallinfo2 to read the heap in use";
#else
  for (const LrpeLayers lrpe : {LrpeLayers::None, LrpeLayers::All}) {
    ModelConfig m = small();
    m.lrpe = lrpe;
    const int64_t B = 2, N = 256;
    TransNormerLLM model(m, 7, DType::F32);
    std::vector<int32_t> ids(static_cast<size_t>(B * N));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37) % m.vocab_size);
    const Tensor tokens = Tensor::from_vector<int32_t>({B, N}, ids);
    const Tensor targets = Tensor::from_vector<int32_t>({B, N}, ids);
    {
      TransNormerLLM::Cache warm_up;
      model.forward(tokens, targets, warm_up);
    }
    auto in_use = [] {
      const struct mallinfo2 info = mallinfo2();
      return static_cast<double>(info.uordblks + info.hblkhd);
    };
    TransNormerLLM::Cache cache;
    const double before = in_use();
    model.forward(tokens, targets, cache);
    const double measured = in_use() - before;

    MemoryLayout l;
    l.seq_len = N;
    l.micro_batch = B;
    l.global_batch = B;
    l.element_bytes = 4;
    const double predicted =
        static_cast<double>(activation_bytes_per_micro_batch(m, l) - 2 * B * N * 4);
    EXPECT_NEAR(measured / predicted, 1.0, 0.03)
        << "measured " << measured << " bytes, predicted " << predicted;
  }
#endif
}

}  // namespace linpar::sim
