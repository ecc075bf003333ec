// The memory model (sim/memory.cpp, read off the code that allocates)
// against that code itself: TransNormerLLM's forward and backward on meta
// tensors with every allocation counted (model/plan_model.h, plan_memory),
// over TP, Megatron-SP, every SP kind and rank, LRPE, and 2-, 4- and 8-byte
// elements. The forward cache is the model's to the byte (on a rank that
// receives a state, the one the model is of); the model's
// backward workspace bounds the run's backward peak from above and by at
// most 6%; the forward's temporaries, which the model leaves out, are
// smaller than the backward's. And the state (weights, gradients, AdamW's
// moments, ZeRO-1's buffers) is what the trainer's own objects hold.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "core/plan_communicator.h"
#include "lasp/factory.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "parallel/step_update.h"
#include "sim/memory.h"

namespace linpar::sim {

TEST(MemoryRun, TheModelIsWhatTheCodeAllocates) {
  ModelConfig m = preset_config("tnl-tiny");  // LRPE on layer 0: keys 2d wide there
  m.n_layers = 3;
  const int64_t B = 2, N = 64;
  int checked = 0;
  for (Recompute recompute : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    for (int64_t e : {2, 4, 8}) {
      for (int tp : {1, 2}) {
        for (bool tp_sp : {false, true}) {
          if (tp_sp && tp == 1) continue;
          for (int sp : {1, 2, 4}) {
            for (SequenceParallelKind kind :
                 {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
                  SequenceParallelKind::AllGather, SequenceParallelKind::Ulysses}) {
              if (sp == 1 && kind != SequenceParallelKind::Lasp) continue;
              MemoryLayout l;
              l.tp = tp;
              l.tp_sp = tp_sp;
              l.sp = sp;
              l.sp_kind = kind;
              l.seq_len = N;
              l.micro_batch = l.global_batch = B;
              l.element_bytes = e;
              l.recompute = recompute;
              try {
                validate_layout(m, l);
              } catch (const UserError&) {
                continue;  // Ulysses with more SP ranks than heads per TP rank
              }
              const MemoryBreakdown model = memory_per_gpu(m, l);
              for (int r = 0; r < sp; ++r) {
                const PlannedMemory run =
                    plan_memory(m, TensorParallel{nullptr, 0, tp, tp_sp},
                                SequencePlan{kind, r, sp, lasp::make_sequence_attention},
                                StepShape{B, N / sp, e}, recompute);
                const std::string where = fmt::format(
                    "recompute {} e {} tp {}{} sp {} {} rank {}", recompute_name(recompute), e, tp,
                    tp_sp ? " tp-sp" : "", sp, sp_kind_name(kind), r);
                // LASP's last state sent (the last layer's, keys d wide) is
                // alive after forward: the model's communication buffers.
                const bool sends = sp > 1 && kind == SequenceParallelKind::Lasp && r < sp - 1;
                const int64_t pending = sends ? B * (m.n_heads / tp) * m.head_dim() * m.head_dim() *
                                                    std::max<int64_t>(e, 4)
                                              : 0;
                // The model is of a rank that receives a state (r > 0);
                // rank 0 keeps no received state.
                if (r > 0 || sp == 1) {
                  EXPECT_EQ(run.cache - pending, activation_bytes_per_micro_batch(m, l)) << where;
                } else {
                  EXPECT_LE(run.cache - pending, activation_bytes_per_micro_batch(m, l)) << where;
                }
                EXPECT_LE(pending, model.communication_buffers) << where;
                EXPECT_LT(run.forward_peak, run.backward_peak) << where;
                // The GPU's tensor-core attention workspace (bf16 only) is no
                // allocation of the meta run; LASP's pending send is alive
                // through backward too.
                if (e == 2) continue;
                const int64_t bound =
                    model.workspace + (kind == SequenceParallelKind::Lasp && sp > 1
                                           ? model.communication_buffers
                                           : 0);
                EXPECT_LE(run.backward_peak, bound) << where;
                if (r > 0 || sp == 1)
                  EXPECT_LE(bound - run.backward_peak, bound * 6 / 100) << where;
                ++checked;
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 150);
}

// The weights, gradients, optimizer state and ZeRO-1's buffers against the
// code that holds them: the stage's model built on meta tensors, the
// trainer's optimizer (ZeRO, or AdamW with DDP's buckets) over it and the
// step's update run (parallel/step_update.h), every allocation counted. Over
// 2-, 4- and 8-byte elements, TP, pipeline stages (a tied embedding's copy
// on the last), ZeRO stages 0–3 and 1, 2 or 4 ranks averaging the
// gradients. ZeRO-2's and -3's buffers of a backward (the hooks run in
// backward's order) stay within what the model counts for them.
TEST(MemoryRun, TheStateIsWhatTheTrainerHolds) {
  int checked = 0;
  for (bool tied : {false, true}) {
    ModelConfig m = preset_config("tnl-tiny");
    m.n_layers = 4;
    m.tie_embeddings = tied;
    for (int64_t e : {2, 4, 8}) {
      const DType compute = e == 2 ? DType::BF16 : e == 4 ? DType::F32 : DType::F64;
      const DType weights = e == 2 ? DType::F32 : compute;
      for (int tp : {1, 2}) {
        for (int pp : {1, 2}) {
          for (int zero : {0, 1, 2, 3}) {
            for (int dp : {1, 2, 4}) {
              for (int stage = 0; stage < pp; ++stage) {
                MemoryLayout l;
                l.tp = tp;
                l.pp = pp;
                l.dp = dp;
                l.zero = zero;
                l.stage = stage;
                l.seq_len = 64;
                l.micro_batch = 2;
                l.global_batch = 2 * dp;
                l.element_bytes = e;
                const MemoryBreakdown model = memory_per_gpu(m, l);
                const std::string where =
                    fmt::format("{}e {} tp {} pp {} stage {} zero {} dp {}", tied ? "tied " : "", e,
                                tp, pp, stage, zero, dp);
                MetaMemory memory;
                PlanCommunicator tp_group("tp", 0, tp), pp_group("pp", 0, pp),
                    dp_group("dp", 0, dp);
                const TensorParallel shard{&tp_group, 0, tp};
                const PipelineStage st = pipeline_stage(m, stage, pp);
                TransNormerLLM net = TransNormerLLM::on_meta(m, weights, compute, shard, &st, {});
                MemoryLayout without = l;
                without.zero = 0;
                const MemoryBreakdown plain = memory_per_gpu(m, without);
                EXPECT_EQ(memory.live(), plain.parameters + plain.gradients) << where;
                const int64_t held = memory.live();
                const SumOverModelParallel sum = [&](Tensor& t) {
                  shard.all_reduce(t);
                  if (pp > 1) pp_group.all_reduce(t);
                };
                const StepOptimizer o =
                    make_step_optimizer(net.params(), net.parameter_groups(), dp_group, zero,
                                        AdamWConfig{}, sum, 1 << 12);
                // What the model counts at rest: all but ZeRO-2's and -3's
                // buffers of a backward; the padding in the buffers.
                const int64_t zero_buffers =
                    model.communication_buffers - plain.communication_buffers;
                const int64_t at_rest = model.parameters - model.zero_gathered + model.gradients -
                                        model.zero_gradient_buffers + model.optimizer_state +
                                        zero_buffers;
                EXPECT_EQ(memory.live(), at_rest) << where;
                const int64_t state = memory.live() - held;
                StepUpdate update;
                update.params = &net.params();
                update.buckets = o.buckets.get();
                update.zero = o.zero.get();
                update.optimizer = o.adamw.get();
                update.sum_model_parallel = sum;
                const int64_t before = memory.live();
                // (Building ZeRO-1 held the old storage and the flat vectors
                // at once, a moment before the first step.)
                memory.reset_peak();
                update.update(1e-3, 1.0);
                update.refresh_compute(false);
                EXPECT_EQ(memory.live(), before) << where;
                // The step's one temporary: the norm's 8-byte sum (ZeRO
                // reduces and gathers in place).
                const int64_t temporary = memory.peak() - before;
                EXPECT_EQ(temporary, 8) << where;
                EXPECT_EQ(state, at_rest - plain.parameters - plain.gradients) << where;
                if (zero >= 2) {
                  // A backward's hooks in its order (the embedding, tied on
                  // this stage, at the head's and the input's backward).
                  ParameterHooks* hooks = o.hooks();
                  std::vector<int> order;
                  for (int g = static_cast<int>(net.parameter_groups().size()); g-- > 0;)
                    order.push_back(g);
                  if (tied && pp == 1) order.insert(order.begin(), 0);
                  memory.reset_peak();
                  for (int pass = 0; pass < 2; ++pass) {  // two micro-batches
                    for (size_t k = 0; k < order.size(); ++k) {
                      hooks->before_backward(order[k], k + 1 < order.size() ? order[k + 1] : -1);
                      if (std::find(order.begin() + static_cast<std::ptrdiff_t>(k) + 1, order.end(),
                                    order[k]) == order.end())
                        hooks->after_backward(order[k], pass == 1);
                    }
                  }
                  update.update(1e-3, 1.0);
                  EXPECT_EQ(memory.live(), before) << where;
                  EXPECT_GT(memory.peak() - before, 0) << where;
                  EXPECT_LE(memory.peak() - before,
                            model.zero_gathered + model.zero_gradient_buffers + 8)
                      << where;
                }
                // ZeRO-1 holds less than no ZeRO whenever it shards.
                if (zero == 1 && dp > 1) EXPECT_LT(model.total, plain.total) << where;
                ++checked;
              }
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 3 * 2 * 3 * 4 * 3);
}

}  // namespace linpar::sim
