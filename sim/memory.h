// The memory one GPU holds while training TransNormerLLM under a layout: what
// the real runtime allocates, term by term, read off the code that allocates
// it (each term's source is cited in memory.cpp), in bytes:
//
//   parameters             this rank's shard of its stage's parameters: f32
//                          master weights plus, when computing in bf16, the
//                          bf16 copy forward and backward read (docs/gpu.md);
//                          under ZeRO-3 only their shards and the groups
//                          gathered at once (zero_gathered)
//   gradients              f32, one per parameter; under ZeRO-2 and -3 the
//                          shard and the groups' buffers backward holds at
//                          once (zero_gradient_buffers)
//   optimizer_state        AdamW's m and v, f32; of the shard under ZeRO
//   activations            the forward caches (TransNormerLLM::Cache) of the
//                          micro-batches the pipeline schedule keeps in flight
//   workspace              the largest set of temporaries one layer's (or the
//                          LM head's) backward holds at once beyond the caches,
//                          the per-call buffers of the TP/SP collectives it
//                          makes, and what recomputation rebuilds for it
//   communication_buffers  buffers held across the step: the padding of
//                          ZeRO's whole group buffers, the pipeline's sent and received
//                          activations, LASP's pending state send (DDP's
//                          buckets are the gradients themselves)
//   co2_state              CO2's outer state in HOST memory (round-start
//                          parameters, global point, outer momentum, the
//                          pseudo-gradient in flight): reported, not in total
//   total                  device bytes: every term above but co2_state
//
// The activations and workspace terms are checked against the code itself:
// the model's forward and backward on meta tensors with every allocation
// counted (model/plan_model.h, plan_memory; tests/sim/memory_run_test.cpp:
// the cache to the byte, the workspace a bound within 6%).
//
// Each term is taken at its own peak, so total bounds the true peak from
// above (the workspace of one layer and the last micro-batch's PP buffers
// rarely coincide with the most caches in flight, but can). Not counted: the
// CUDA context, cuBLAS and NCCL internal buffers, the caching allocator's
// fragmentation, the forward pass's temporaries (smaller than backward's).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/layout.h"
#include "model/pipeline_schedule.h"
#include "model/recompute.h"
#include "model/sequence_parallel.h"
#include "sim/hardware.h"

namespace linpar::sim {

// The layout (model/layout.h) on one rank of pipeline stage `stage`.
struct MemoryLayout : Layout {
  int64_t element_bytes = 2;  // activations and compute copies: bf16 2, f32 4 (f64 8 on the CPU)
  int stage = 0;              // the pipeline stage this rank holds
};

struct MemoryBreakdown {
  int64_t parameters = 0;
  int64_t gradients = 0;
  int64_t optimizer_state = 0;
  int64_t activations = 0;
  int64_t workspace = 0;
  int64_t communication_buffers = 0;
  int64_t co2_state = 0;  // host memory
  int64_t total = 0;      // device memory
  // The transient parts of `parameters` and `gradients` under ZeRO-3 and -2:
  // the most gathered weights and gradient buffers live at once (the group
  // in use, the one prefetched or in flight, and a tied embedding that both
  // ends of the stage use), each a whole padded group.
  int64_t zero_gathered = 0;
  int64_t zero_gradient_buffers = 0;
  // The parts of `activations`: one micro-batch's cache times the count.
  // Interleaved (chunks > 1): one micro-batch's caches over all the stage's
  // chunks, and the most chunk passes cached at once; `activations` is then
  // the peak of the live chunks' caches in the schedule's order.
  int64_t activation_bytes_per_micro_batch = 0;
  int64_t micro_batches_in_flight = 0;
};

// Per-GPU memory of a rank of pipeline stage layout.stage (the busiest SP rank:
// one that receives a state, r > 0). UserError for an impossible layout.
MemoryBreakdown memory_per_gpu(const ModelConfig& model, const MemoryLayout& layout);
// The stage with the largest total (layout.stage is ignored).
MemoryBreakdown busiest_stage_memory(const ModelConfig& model, const MemoryLayout& layout);

// One micro-batch's forward cache on this stage (what backward reads), bytes.
int64_t activation_bytes_per_micro_batch(const ModelConfig& model, const MemoryLayout& layout);
// The most micro-batches whose caches stage `stage` holds at once in the
// schedule the trainer runs (pipeline_actions): GPipe m, 1F1B min(pp − stage, m).
int64_t micro_batches_in_flight(PipelineSchedule schedule, int stage, int stages,
                                int64_t micro_batches);

// The forward caches stage `stage` of `stages` holds at once, given one
// micro-batch's cache of each of its model chunks (one chunk: no
// interleaving), kept from the chunk's forward to its backward in the
// schedule's order: fills `memory`'s activations,
// activation_bytes_per_micro_batch (all chunks) and micro_batches_in_flight
// (interleaved: the most chunk passes at once).
void fill_activations(MemoryBreakdown& memory, PipelineSchedule schedule, int stage, int stages,
                      const std::vector<int64_t>& chunk_bytes, int64_t micro_batches);

// The breakdown in GiB as `linpar sim` and `linpar train --dry-run` print it:
// "parameters 1.20, gradients 1.20, optimizer 2.40, activations 3.10 (1
// micro-batches in flight), workspace 0.50, buffers 0.00 GiB" (and the CO2
// host state when there is one).
std::string memory_summary(const MemoryBreakdown& memory);

// The weights, gradients, optimizer state and ZeRO's padding (in
// communication_buffers) of a rank holding parameter groups `groups` (the
// model's order, sim::stage_parameter_groups) under ZeRO stage `zero` over
// `ranks`, in `master`-byte masters and gradients with a compute copy of
// `element` bytes when narrower; `tied_group`: the index of a group both
// ends of the stage use through backward (the embedding tied on one stage),
// or -1. The terms parallel/zero.h's ZeroOptimizer (or AdamW) allocates.
void fill_optimizer_side(MemoryBreakdown& memory, const std::vector<int64_t>& groups, int zero,
                         int64_t ranks, int64_t master, int64_t element, int tied_group);

// Whether the device total fits the GPU's memory (GiB = 2^30 bytes).
bool fits(const MemoryBreakdown& memory, const GpuSpec& gpu);
// "" when it fits, else e.g. "needs 93.4 GiB per GPU, h100 has 80 GiB".
std::string memory_overflow_message(const MemoryBreakdown& memory, const GpuSpec& gpu);

}  // namespace linpar::sim
