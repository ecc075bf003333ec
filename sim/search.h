// The layout search: every valid way to train a model on a cluster's GPUs at a
// fixed sequence length and global batch (dp · tp · pp · sp = the GPUs; the
// SP kind, TP's sequence parallelism, the micro-batch, recomputation, ZeRO-1,
// CO2's τ and the pipeline schedule), each costed by the step simulation
// (sim/step.h) and ranked by throughput among those whose memory fits.
//
// Speed comes from the simulation's two phases: a micro-batch's costs depend
// on the shard (tp, tp_sp, sp, SP kind), pp, the micro-batch and
// recomputation (and the placement of the PP group, so dp: fixed by the rest
// for one cluster), not on ZeRO, CO2 or the schedule, so they are computed
// once for all the layouts that share them; and a layout's memory is known
// before anything is scheduled, so a layout that cannot fit is reported with
// its overflow and never costed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/pipeline_schedule.h"
#include "model/sequence_parallel.h"
#include "sim/hardware.h"
#include "sim/memory.h"
#include "sim/model.h"
#include "sim/step.h"

namespace linpar::sim {

// What varies and what is fixed. Degrees: tp divides a node's GPUs (TP's
// all-reduces, several per layer, stay on NVLink) and the GPUs; pp divides
// the rest and is at most the layers; sp is a power of two dividing the rest
// and the sequence; dp = GPUs / (tp · pp · sp) must divide the global batch.
// Each combination the model refuses (heads, widths, vocabulary, the SP kinds
// its attention supports) is counted in SearchStats::rejected, not searched.
// ZeRO's stages are tried where dp · sp > 1, CO2 where dp > 1 and ZeRO is off.
struct SearchSpace {
  int64_t seq_len = 2048;    // tokens per sample (all SP ranks together)
  int64_t global_batch = 1;  // samples per step
  int64_t max_micro_batch =
      8;  // micro-batches: the powers of two up to this dividing global_batch / dp
  // SP kinds tried where sp > 1; empty: lasp, lasp2, allgather and ulysses for
  // a TransNormerLLM, ulysses for a softmax transformer.
  std::vector<SequenceParallelKind> sp_kinds;
  // CO2's τ values tried where CO2 applies (dp > 1, ZeRO off; 0: synchronous
  // DP); every other layout is synchronous.
  std::vector<int64_t> co2_taus{0};
  // ZeRO stages tried where dp · sp > 1 (0: none, with CO2's τ values); a
  // single rank per shard runs stage 0.
  std::vector<int> zero_stages{0, 1, 2, 3};
  // Pipeline schedules tried where pp > 1 (a single stage has no schedule).
  std::vector<PipelineSchedule> schedules{PipelineSchedule::OneFOneB};
  // Model chunks per stage tried with 1F1B where pp > 1: 1 is plain 1F1B,
  // v > 1 interleaved (SimLayout::pp_chunks; where the micro-batches per
  // step are a multiple of pp and pp·v is at most the layers).
  std::vector<int> pp_chunks{1};
  int64_t element_bytes = 2;  // bf16 activations
  // How every layout averages its gradients (SimLayout's fields).
  bool grad_reduce_overlap = true;
  int64_t grad_reduce_bytes = 4;
  bool grad_accumulate_add = false;
  // The LASP layouts' ring (SimLayout::lasp_blocking); the other SP kinds ignore it.
  bool lasp_blocking = false;
};

// One layout and what the simulation says of it (StepTimes: bubble_seconds
// is the busiest stage's compute stream idle in the step, bubble and exposed
// communication). Layouts that do not fit are never scheduled: their step
// fields stay 0.
struct SearchResult : StepTimes {
  SimLayout layout;
  bool fits = false;
  std::string memory_message;  // "" when it fits
  MemoryBreakdown memory;      // the busiest stage's GPU
};

struct SearchStats {
  int64_t evaluated = 0;  // layouts returned (valid ones)
  int64_t fitting = 0;
  int64_t rejected = 0;           // degree/kind combinations the model refuses
  std::string first_rejection;    // the model's reason for the first of them
  int64_t micro_batch_costs = 0;  // phase-1 computations (shared by layouts)
  int64_t schedules = 0;          // phase-2 runs (one per fitting layout)
  double seconds = 0;             // wall time of the whole search
  double memory_seconds = 0, costs_seconds = 0, schedule_seconds = 0;
  double plan_seconds = 0;  // of costs_seconds: building and costing the shards' op plans
  double layouts_per_second() const {
    return seconds > 0 ? static_cast<double>(evaluated) / seconds : 0;
  }
};

// Every valid layout of the space on the cluster's GPUs, fitting ones first
// by tokens/GPU/s (highest first), then the others by memory (smallest
// first); ties keep the enumeration order. UserError for a bad space
// (non-positive sequence, batch or micro-batch limit, negative τ, an SP kind
// the model cannot run).
std::vector<SearchResult> search_layouts(const SimModel& model, const ClusterSpec& cluster,
                                         const SearchSpace& space, const CostModel& cost = {},
                                         SearchStats* stats = nullptr);

// One line on why results[0] wins, from the numbers: what its degrees buy
// (TP inside a node, the pipeline's idle share, SP, ZeRO/recompute memory),
// and the best fitting layout that differs from it in one knob (the degrees
// (dp, tp, pp, sp) count as one), with the step-time component or memory
// term that loses it the most. "no layout fits: the smallest needs ..." when
// nothing fits; "" for no results.
std::string explain_winner(const std::vector<SearchResult>& results);

// "dp 16, tp 8 (sp), pp 8, sp 2 (lasp), micro-batch 1, recompute none, zero 0, co2 off".
std::string describe_layout(const SimLayout& layout);

}  // namespace linpar::sim
