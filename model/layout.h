// The layout of a training run: the parallel degrees, the strategies and the
// batch. `linpar train`, `linpar sim`, `linpar search` and the memory model
// read the same fields and refuse the same layouts with the same messages
// (validate_layout); the simulator's and the memory model's layouts extend
// this one with what only they have (sim/step.h, sim/memory.h).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/pipeline_schedule.h"
#include "model/recompute.h"
#include "model/sequence_parallel.h"

namespace linpar {

struct Layout {
  int dp = 1, tp = 1, pp = 1, sp = 1;
  SequenceParallelKind sp_kind = SequenceParallelKind::Lasp;  // with sp > 1
  bool tp_sp = false;  // Megatron sequence parallelism inside the TP group (--tp-sp)
  int zero = 0;        // ZeRO stage 0–3 over the dp·sp ranks of a model shard (parallel/zero.h)
  Recompute recompute = Recompute::None;
  int64_t co2_tau = 0;           // 0: synchronous data parallelism; else CO2 with τ local steps
  bool co2_shard_outer = false;  // CO2's outer state 1/dp per rank
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  // Model chunks per pipeline stage: > 1 is interleaved 1F1B
  // (Megatron-LM's --virtual-pipeline-model-parallel-size).
  int pp_chunks = 1;
  int64_t seq_len = 2048;    // tokens per sample (all SP ranks together)
  int64_t micro_batch = 1;   // samples per micro-batch
  int64_t global_batch = 1;  // samples per step, a multiple of dp · micro_batch

  int world() const { return dp * tp * pp * sp; }
  int virtual_stages() const { return pp * pp_chunks; }
  // Per step per pipeline.
  int64_t micro_batches() const { return global_batch / (static_cast<int64_t>(dp) * micro_batch); }
};

// UserError, one line naming the option, the value and the rule, for a
// layout no model could run: degrees, batch and sequence sizes and their
// divisibility, --tp-sp, ZeRO, CO2, interleaving.
void validate_layout(const Layout& layout);
// The same, and what the TransNormerLLM `model` needs of it: tp dividing
// the heads, SGLU width and vocabulary, Ulysses' heads per rank, a layer on
// every pipeline stage (and model chunk).
void validate_layout(const ModelConfig& model, const Layout& layout);

}  // namespace linpar
