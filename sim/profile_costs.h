// Costs from a measured profile (`linpar profile`, format linpar-profile-1,
// docs/profile.md) instead of datasheet peaks times efficiencies:
//   matrix products   op FLOPs / the measured GEMM rate of the same layer and
//                     pass; a backward op is the input-gradient and the
//                     weight-gradient product, half its FLOPs each (the plan
//                     counts 2·(2mnk) for it), each at its own measured rate
//   lightning attention (and the lasp., lasp2., allgather., ulysses. ops)
//                     op FLOPs / the measured forward or backward rate of the
//                     kernel with the op's key width dk
//   everything else   op bytes / the measured copy rate (read + write)
// Compute-bound ops take the longer of that and their bytes at the copy rate,
// as the roofline (sim/op_costs.h) does.
//
// Other shapes: the profile measures each product and attention kernel at
// several micro-batches (1, 2, 4, ... up to twice the given one) of one
// sequence length and TP shard. An op is costed at the measured *rate*
// (FLOPs / TFLOP/s) of its own layer, pass (or key width), interpolated in
// log FLOPs between the measured sizes and held at the nearest outside them:
// small products run below the rate of large ones. A profile with one size
// per product (older files) gives that one rate.
//
// Fallbacks to the roofline (op_seconds with the given Efficiency): a matrix
// product whose weight (model/op_plan.h, ProductWeight) or pass the profile
// lacks, an attention op whose dk it lacks (or whose dk is not known and the
// profile measured several), and the fused softmax core.
// Collectives: the measured bus bandwidth of the kind at the group size; no
// entry for that kind and size returns std::nullopt and the caller uses the
// alpha-beta model (sim/collectives.h). The profile measured groups of
// consecutive ranks (all groups at once); whether that placement stands for
// a strided group (DP across nodes) is the caller's call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "model/config.h"
#include "model/op_plan.h"
#include "sim/hardware.h"
#include "sim/op_costs.h"

namespace linpar::sim {

// One matrix product at one weight shape: C[m, n] += A[m, k] · B[k, n].
struct MeasuredGemm {
  std::string layer;  // qkvu_proj, out_proj, channel_mixer.l1 (l2 too), channel_mixer.l3, lm_head
  std::string pass;   // forward, backward_input, backward_weight
  int64_t m = 0, n = 0, k = 0;
  double seconds = 0;
  double tflops = 0;  // 2mnk / seconds
};

// The lightning-attention kernels at one key width.
struct MeasuredAttention {
  int64_t batch = 0, heads = 0, length = 0, dk = 0, dv = 0, block = 0;
  double forward_seconds = 0, backward_seconds = 0;
  double forward_tflops = 0, backward_tflops = 0;  // the op plan's FLOP count / seconds
};

// One collective over groups of `ranks` consecutive ranks.
struct MeasuredCollective {
  CollectiveKind kind = CollectiveKind::AllReduce;
  int ranks = 0;
  int64_t bytes = 0;  // payload per rank, as in sim/collectives.h
  double seconds = 0;
  double busbw_gbps = 0;  // nccl-tests' bus bandwidth, GB/s
};

struct MeasuredProfile {
  std::string path;  // the file it was read from, for messages
  std::string device, model;
  int ranks = 1;  // the MPI world it ran with
  int64_t seq_len = 0, micro_batch = 0;
  int tp = 1;  // the shapes are one TP rank's shard
  std::vector<MeasuredGemm> gemms;
  std::vector<MeasuredAttention> attention;
  double elementwise_gbps = 0;  // optional `elementwise` entry (0: absent): a product's bytes / seconds
  double copy_gbps = 0;                         // device-to-device copy, 2·bytes / seconds
  std::vector<MeasuredCollective> collectives;  // sorted by kind, ranks, bytes
  // Optional `overlap` entry: compute and a collective at once
  // (sim/engine.h's interference σ and ρ).
  bool has_overlap = false;
  double overlap_compute_slowdown = 0, overlap_comm_slowdown = 0;
};

// Reads a linpar-profile-1 file. UserError, one line naming the file and the
// problem, for a missing or unreadable file, invalid JSON, another format,
// a missing key or one of the wrong type, a non-positive value, an unknown
// layer, pass or collective kind, and a repeated entry.
MeasuredProfile load_profile(const std::string& path);

// Where an op's time came from.
enum class CostSource { MeasuredGemm, MeasuredAttention, MeasuredCopy, Roofline };
const char* cost_source_name(CostSource source);

struct ProfiledOp {
  double seconds = 0;
  CostSource source = CostSource::Roofline;
};

// Seconds of one op of the plan on one GPU (see the top of this file). An
// attention op's key width is its core.head_dim (model/op_plan.h); 0 (not
// known) works when the profile measured one width only. `gpu` and
// `fallback` cost what the profile does not cover.
ProfiledOp profile_op_cost(const PlannedOp& op, const MeasuredProfile& profile, const GpuSpec& gpu,
                           const Efficiency& fallback);
double profile_op_seconds(const PlannedOp& op, const MeasuredProfile& profile, const GpuSpec& gpu,
                          const Efficiency& fallback);

// Seconds of one collective of `payload_bytes` per rank over `ranks` ranks,
// from the measured bus bandwidth of that kind and group size, interpolated
// linearly in log(bytes) between the measured sizes and held at the nearest
// measured value outside them. Back to time with nccl-tests' factors:
// t = bytes · f / busbw, f = 2(n−1)/n for all-reduce, (n−1)/n for
// all-gather, reduce-scatter and all-to-all, 1 for send/recv and broadcast.
// 0 for a group of one rank (send/recv excepted) or no bytes; std::nullopt
// when the profile has no entry for the kind at this group size.
std::optional<double> profile_collective_seconds(CollectiveKind kind, int64_t payload_bytes,
                                                 int ranks, const MeasuredProfile& profile);

}  // namespace linpar::sim
