// The memory model (sim/memory.cpp, read off the code that allocates)
// against that code itself: TransNormerLLM's forward and backward on meta
// tensors with every allocation counted (model/plan_model.h, plan_memory),
// over TP, Megatron-SP, every SP kind and rank, LRPE, and 2-, 4- and 8-byte
// elements. The forward cache is the model's to the byte (on a rank that
// receives a state, the one the model is of); the model's
// backward workspace bounds the run's backward peak from above and by at
// most 6%; the forward's temporaries, which the model leaves out, are
// smaller than the backward's.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "lasp/factory.h"
#include "model/plan_model.h"
#include "sim/memory.h"

namespace linpar::sim {

TEST(MemoryRun, TheModelIsWhatTheCodeAllocates) {
  ModelConfig m = preset_config("tnl-tiny");  // LRPE on layer 0: keys 2d wide there
  m.n_layers = 3;
  const int64_t B = 2, N = 64;
  int checked = 0;
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
                              StepShape{B, N / sp, e});
              const std::string where =
                  fmt::format("e {} tp {}{} sp {} {} rank {}", e, tp, tp_sp ? " tp-sp" : "", sp,
                              sp_kind_name(kind), r);
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
                  model.workspace +
                  (kind == SequenceParallelKind::Lasp && sp > 1 ? model.communication_buffers : 0);
              EXPECT_LE(run.backward_peak, bound) << where;
              if (r > 0 || sp == 1) EXPECT_LE(bound - run.backward_peak, bound * 6 / 100) << where;
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace linpar::sim
