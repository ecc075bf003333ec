#include "sim/memory.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/tensor_parallel.h"
#include "model/transnormer.h"
#include "sim/step.h"

namespace linpar::sim {

namespace {

// One micro-batch on one rank: B samples of C = N/sp tokens (this SP rank's
// chunk), the residual stream on Ns tokens (C/tp under --tp-sp,
// TensorParallel::stream_length), H/tp heads of d, F/tp SGLU width, V/tp
// vocabulary rows.
struct Shard {
  int64_t B, N, C, Ns, D, Dl, Hl, d, Fl, Vl;
  int64_t e;       // activations and compute copies
  int64_t stat_e;  // per-row statistics and KV states: f32 on the GPU, the
                   // activation dtype on the CPU (Tensor::stats_dtype): max(e, 4)
  int64_t master;  // parameters, gradients, AdamW moments: f32 master weights
                   // on the GPU (Trainer: param_dtype), the activation dtype on the CPU
};

Shard shard_of(const ModelConfig& m, const MemoryLayout& l) {
  Shard s{};
  s.B = l.micro_batch;
  s.N = l.seq_len;
  s.C = l.seq_len / l.sp;
  s.Ns = l.tp_sp && l.tp > 1 ? s.C / l.tp : s.C;
  s.D = m.width;
  s.Hl = m.n_heads / l.tp;
  s.d = m.head_dim();
  s.Dl = s.Hl * s.d;
  s.Fl = m.glu_dim / l.tp;
  s.Vl = m.vocab_size / l.tp;
  s.e = l.element_bytes;
  s.stat_e = std::max<int64_t>(l.element_bytes, 4);
  s.master = std::max<int64_t>(l.element_bytes, 4);
  return s;
}

// Key dimension of the attention: 2d after LRPE (q_rot, k_rot), else d.
int64_t key_dim(const ModelConfig& m, int64_t layer) {
  return m.layer_uses_lrpe(layer) ? 2 * m.head_dim() : m.head_dim();
}

// One KV state [B, H/tp, dk, dv] (LaspRing, Lasp2, AllGatherAttention: stats dtype).
int64_t state_bytes(const Shard& s, int64_t dk) { return s.B * s.Hl * dk * s.d * s.stat_e; }

// What the sequence-parallel strategy keeps in AttentionCache::saved per layer
// on a rank r > 0 (rank 0 receives no state).
int64_t sp_saved_bytes(const MemoryLayout& l, const Shard& s, int64_t dk) {
  if (l.sp == 1) return 0;
  switch (l.sp_kind) {
    case SequenceParallelKind::Lasp:   // ring.cpp: {kv_in}, KV_{r−1} from rank r−1
    case SequenceParallelKind::Lasp2:  // lasp2.cpp: {kv_in}, the prefix formed from the
                                       // gathered states (the T-state gather buffer is
                                       // freed when forward returns)
      return state_bytes(s, dk);
    case SequenceParallelKind::AllGather:  // allgather.cpp: {kv_in, k_all, v_all}: K and V
                                           // of the whole sequence, kept for backward
      return state_bytes(s, dk) + s.B * s.Hl * s.N * (dk + s.d) * s.e;
    case SequenceParallelKind::Ulysses:  // ulysses.cpp: {qh, kh, vh} [B, H/(tp·sp), N, dk|dv]
      return s.B * s.Hl * s.C * (2 * dk + s.d) * s.e;
  }
  return 0;
}

// Layer `layer`'s cache (TransNormerLLM::LayerCache) with everything kept:
//   token_norm, channel_norm [B, Ns, D]; their rstd [B·Ns] (stats)
//   TokenMixerCache: qkvu [B, C, 4D/tp] (SiLU's backward reads the raw q, k
//     there); q, k, v [B, H/tp, C, d]; u, attention_norm, gated [B, C, D/tp];
//     attention_rstd [B·C] (stats);
//     q_rot, k_rot [B, H/tp, C, 2d] with LRPE; the SP strategy's saved tensors
//   ChannelMixerCache: a1, a2, gated [B, C, F/tp]
int64_t full_layer_cache(const ModelConfig& m, int64_t layer, const MemoryLayout& l,
                         const Shard& s) {
  const int64_t tokens = s.B * s.C, stream = s.B * s.Ns;
  int64_t bytes = 2 * stream * s.D * s.e + 2 * stream * s.stat_e;
  bytes += tokens * (4 + 3 + 3) * s.Dl * s.e + tokens * s.stat_e;
  if (m.layer_uses_lrpe(layer)) bytes += tokens * 4 * s.Dl * s.e;
  bytes += tokens * 3 * s.Fl * s.e;
  return bytes + sp_saved_bytes(l, s, key_dim(m, layer));
}

// Selective recomputation (the attention core, Korthikanti et al. §5): keep
// every projection's input and output, recompute what lies between qkvu_proj
// and out_proj from qkvu in backward: the split into heads with SiLU (q, k,
// v, u), LRPE (q_rot, k_rot), the lightning attention and the output
// SRMSNorm's values. Kept: both block norms and rstds, qkvu, gated (out_proj's
// input), attention_rstd (so rebuilding attention_norm needs no TP all-reduce
// of the row sums), the SGLU cache (a1, a2: projection outputs; gated: l3's
// input) and the SP strategy's saved tensors, so the attention recompute runs
// on this rank without the ring or the all-gather again (Ulysses repeats only
// the all-to-all of the attention output back to the sequence layout).
// Dropped per layer: 5 [B, C, D/tp] tensors (q, k, v, u, attention_norm), 4
// more with LRPE.
int64_t selective_dropped(const ModelConfig& m, int64_t layer, const Shard& s) {
  return s.B * s.C * (m.layer_uses_lrpe(layer) ? 9 : 5) * s.Dl * s.e;
}

// Full recomputation: each layer keeps only its input, the residual stream
// [B, Ns, D], and backward reruns the layer's forward from it. LASP and LASP-2
// also keep their received state (LASP's "state caching": a d×d per head,
// and rerunning the ring or the gather in backward would serialise the SP
// ranks again); all-gather and Ulysses rerun their collectives.
// (SequenceAttention::keeps_cache_under_full_recompute).
int64_t full_recompute_kept_state(const MemoryLayout& l, const Shard& s, int64_t dk) {
  const bool keeps_state = l.sp > 1 && (l.sp_kind == SequenceParallelKind::Lasp ||
                                        l.sp_kind == SequenceParallelKind::Lasp2);
  return keeps_state ? state_bytes(s, dk) : 0;
}
int64_t full_recompute_kept(const MemoryLayout& l, const Shard& s, int64_t dk) {
  return s.B * s.Ns * s.D * s.e + full_recompute_kept_state(l, s, dk);
}

int64_t layer_cache(const ModelConfig& m, int64_t layer, const MemoryLayout& l, const Shard& s) {
  switch (l.recompute) {
    case Recompute::None:
      return full_layer_cache(m, layer, l, s);
    case Recompute::Selective:
      return full_layer_cache(m, layer, l, s) - selective_dropped(m, layer, s);
    case Recompute::Full:
      return full_recompute_kept(l, s, key_dim(m, layer));
  }
  return 0;
}

// The tensor-core lightning-attention kernels' per-chunk states (bf16 only,
// head dims 16..256 in steps of 16: lightning_attention_fast.cu, supports and
// workspace_bytes): B·H·chunks·dk·dv f32, twice in backward. Chunks hold up to
// 16 sub-blocks of 64 tokens; plan() shrinks them only when B·H·chunks is too
// small to fill the GPU, where the workspace is a few MB at most: counted with
// 1024-token chunks.
int64_t attention_kernel_workspace(int64_t B, int64_t heads, int64_t length, int64_t dk, int64_t dv,
                                   int64_t e) {
  auto head_dim_ok = [](int64_t x) { return x >= 16 && x <= 256 && x % 16 == 0; };
  if (e != 2 || !head_dim_ok(dk) || !head_dim_ok(dv)) return 0;
  const int64_t chunks = (length + 1023) / 1024;
  return 2 * B * heads * chunks * dk * dv * 4;
}

// The temporaries of the attention strategy's backward (its call only).
int64_t attention_backward_temporaries(const MemoryLayout& l, const Shard& s, int64_t dk) {
  const int64_t dv = s.d, state = state_bytes(s, dk);
  const int64_t local = attention_kernel_workspace(s.B, s.Hl, s.C, dk, dv, s.e);
  if (l.sp == 1) return local;
  switch (l.sp_kind) {
    case SequenceParallelKind::Lasp:  // d_kv_out received, d_kv_in sent
      return local + 2 * state;
    case SequenceParallelKind::Lasp2:
      // The T gathered states with g, then with d_kv_out (g is freed first:
      // lasp2.cpp; found by tests/sim/memory_run_test.cpp, 2026-12-07, where
      // this said T + 2).
      return local + (l.sp + 1) * state;
    case SequenceParallelKind::AllGather:  // dk_all, dv_all (reduce-scatter input), d_kv_in, zero
      return local + s.B * s.Hl * s.N * (dk + dv) * s.e + 2 * state;
    case SequenceParallelKind::Ulysses: {
      // d_oh and dqh, dkh, dvh in the head layout (as large as the chunk's
      // d_o, dq, dk, dv), the kernel over H/(tp·sp) heads and the whole
      // sequence, and to_sequence's send and receive blocks of one of them.
      const int64_t tokens = s.B * s.C;
      return tokens * s.Hl * (dv + 2 * dk + dv) * s.e +
             attention_kernel_workspace(s.B, s.Hl / l.sp, s.N, dk, dv, s.e) +
             2 * tokens * s.Hl * dk * s.e;
    }
  }
  return local;
}

// The peak of one layer's backward (TransNormerLLM::backward_stage and the
// mixers' backward), beyond the caches.
int64_t layer_backward_peak(const ModelConfig& m, int64_t layer, const MemoryLayout& l,
                            const Shard& s) {
  const int64_t tokens = s.B * s.C, e = s.e, dk = key_dim(m, layer);
  const bool tp_sp = l.tp_sp && l.tp > 1;
  // backward_stage's d_norm and dx [B, Ns, D]; under --tp-sp the block's input
  // gathered again (gather_sequence) for the whole call.
  const int64_t base = 2 * s.B * s.Ns * s.D * e + (tp_sp ? tokens * s.D * e : 0);
  // --tp-sp at the end of a block: the [B, C, D] partial input gradient and
  // reduce_partial's blocks of it.
  const int64_t reduce = tp_sp ? 2 * tokens * s.D * e : 0;
  // TokenMixer::backward: d_gated, du, d_norm, d_attention [B, C, D/tp] and the
  // row dots, dq_att, dk_att (dk wide), dv, ...
  const int64_t held = tokens * (4 * s.Dl + 2 * s.Hl * dk + s.Dl) * e + tokens * s.stat_e;
  const int64_t in_attention = held + attention_backward_temporaries(l, s, dk);
  // ... then (LRPE) dq, dk and d_qkvu [B, C, 4D/tp].
  const int64_t lrpe = m.layer_uses_lrpe(layer) ? 2 * tokens * s.Dl * e : 0;
  const int64_t at_end = held + lrpe + tokens * 4 * s.Dl * e + reduce;
  const int64_t token_mixer = std::max(in_attention, at_end);
  // ChannelMixer::backward: d_gated, da1, da2 [B, C, F/tp].
  const int64_t channel_mixer = tokens * 3 * s.Fl * e + reduce;
  int64_t rebuilt = 0;  // what recomputation rebuilds for this layer's backward
  if (l.recompute == Recompute::Full) {
    // The whole cache but the strategy's kept state, which the rebuilt
    // cache shares (TransNormerLLM::layer_cache_for_backward).
    MemoryLayout none = l;
    none.recompute = Recompute::None;
    rebuilt = full_layer_cache(m, layer, none, s) - full_recompute_kept_state(l, s, dk);
  } else if (l.recompute == Recompute::Selective) {
    rebuilt = selective_dropped(m, layer, s);
  }
  return base + std::max(token_mixer, channel_mixer) + rebuilt;
}

// The LM head's and the loss's cache on the last stage (Cache: final_norm
// [B, Ns, D], final_rstd [B·Ns], logits [B·C, V/tp] over the whole chunk,
// row_max and sum_exp [B·C] stats).
int64_t head_cache(const Shard& s) {
  const int64_t tokens = s.B * s.C, stream = s.B * s.Ns;
  return stream * s.D * s.e + stream * s.stat_e + tokens * s.Vl * s.e + 2 * tokens * s.stat_e;
}

// The head's backward: d_logits [B·C, V/tp], d_norm and dx [B, Ns, D]; under
// --tp-sp final_norm gathered, the [B, C, D] partial and its reduce blocks.
int64_t head_backward_peak(const MemoryLayout& l, const Shard& s) {
  const int64_t tokens = s.B * s.C;
  const int64_t tp_sp = l.tp_sp && l.tp > 1 ? 3 * tokens * s.D * s.e : 0;
  return tokens * s.Vl * s.e + 2 * s.B * s.Ns * s.D * s.e + tp_sp;
}

void validate(const ModelConfig& m, const MemoryLayout& l) {
  validate_layout(m, l);
  if (l.stage < 0 || l.stage >= l.pp)
    user_error("stage {}: expected 0 to pp − 1 = {}", l.stage, l.pp - 1);
  if (l.element_bytes != 2 && l.element_bytes != 4 && l.element_bytes != 8)
    user_error("element bytes {}: expected 2 (bf16), 4 (f32) or 8 (f64)", l.element_bytes);
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

int64_t micro_batches_in_flight(PipelineSchedule schedule, int stage, int stages,
                                int64_t micro_batches) {
  // The trainer keeps a micro-batch's cache from its forward to its backward
  // (Trainer::train_step clears it after backward_stage): GPipe runs every
  // forward first; 1F1B's warm-up forwards and the steady state's next one
  // are in flight at its first backward (the test counts them in
  // pipeline_actions).
  if (schedule == PipelineSchedule::GPipe) return micro_batches;
  return std::min<int64_t>(stages - stage, micro_batches);
}

void fill_activations(MemoryBreakdown& r, PipelineSchedule schedule, int stage, int stages,
                      const std::vector<int64_t>& chunk_bytes, int64_t micro_batches) {
  r.activation_bytes_per_micro_batch = 0;
  for (int64_t b : chunk_bytes) r.activation_bytes_per_micro_batch += b;
  if (chunk_bytes.size() == 1) {
    r.micro_batches_in_flight = micro_batches_in_flight(schedule, stage, stages, micro_batches);
    r.activations = r.activation_bytes_per_micro_batch * r.micro_batches_in_flight;
    return;
  }
  r.activations = r.micro_batches_in_flight = 0;
  int64_t live = 0, passes = 0;
  const int chunks = static_cast<int>(chunk_bytes.size());
  for (const PipelineAction& a : interleaved_pipeline_actions(stage, stages, chunks, micro_batches)) {
    const int64_t b = chunk_bytes[static_cast<size_t>(a.chunk)];
    live += a.backward ? -b : b;
    passes += a.backward ? -1 : 1;
    r.activations = std::max(r.activations, live);
    r.micro_batches_in_flight = std::max(r.micro_batches_in_flight, passes);
  }
}

int64_t activation_bytes_per_micro_batch(const ModelConfig& m, const MemoryLayout& l) {
  validate(m, l);
  const Shard s = shard_of(m, l);
  const PipelineStage st = pipeline_stage(m, l.stage, l.pp);
  // Cache::tokens, targets [B, C] i32 (copied to the device), on every stage.
  int64_t bytes = 2 * s.B * s.C * 4;
  for (int64_t layer = st.first_layer; layer < st.end_layer; ++layer)
    bytes += layer_cache(m, layer, l, s);
  if (st.last()) bytes += head_cache(s);
  return bytes;
}

void fill_optimizer_side(MemoryBreakdown& r, const std::vector<int64_t>& groups, int zero,
                         int64_t n, int64_t master, int64_t e, int tied_group) {
  int64_t P = 0, T = 0;  // elements, and this rank's shards of them (Σ ⌈s/n⌉)
  for (int64_t s : groups) {
    P += s;
    T += (s + n - 1) / n;
  }
  const int64_t pad = n * T - P;
  const bool copy = e < master;  // the compute copies (Parameter::compute)
  r.zero_gathered = r.zero_gradient_buffers = 0;
  if (zero == 0) {
    r.parameters = P * master + (copy ? P * e : 0);
    r.gradients = P * master;
    r.optimizer_state = 2 * P * master;
    return;
  }
  r.optimizer_state = 2 * T * master;  // m and v of this rank's blocks (rank 0's: all real)
  if (zero <= 2) {
    // Whole values in the groups' padded buffers (ZeroOptimizer), their
    // compute copies per parameter.
    r.parameters = P * master + (copy ? P * e : 0);
    r.communication_buffers += pad * master;
  }
  if (zero == 1) {
    r.gradients = P * master;
    r.communication_buffers += pad * master;
    return;
  }
  // Stages 2 and 3: the groups' whole buffers live at once in backward (and
  // ZeRO-3's gathered weights in forward and backward): the group in use and
  // the one in flight or prefetched, bounded by the two largest, and a tied
  // embedding through the whole backward.
  int64_t first = 0, second = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (static_cast<int>(g) == tied_group) continue;
    const int64_t whole = n * ((groups[g] + n - 1) / n);
    if (whole > first) {
      second = first;
      first = whole;
    } else if (whole > second) {
      second = whole;
    }
  }
  const int64_t tied =
      tied_group >= 0 ? n * ((groups[static_cast<size_t>(tied_group)] + n - 1) / n) : 0;
  const int64_t live = first + second + tied;
  r.zero_gradient_buffers = live * master;
  r.gradients = T * master + r.zero_gradient_buffers;
  if (zero == 3) {
    r.zero_gathered = live * (copy ? e : master);
    r.parameters = T * master + (copy ? T * e : 0) + r.zero_gathered;
  }
}

MemoryBreakdown memory_per_gpu(const ModelConfig& m, const MemoryLayout& l) {
  validate(m, l);
  const Shard s = shard_of(m, l);
  // The stage's chunks as virtual stages (one, the stage itself, without
  // interleaving); each chunk's own layout for the per-chunk terms.
  const int V = l.pp * l.pp_chunks;
  std::vector<MemoryLayout> chunk(static_cast<size_t>(l.pp_chunks), l);
  std::vector<PipelineStage> st;
  for (int c = 0; c < l.pp_chunks; ++c) {
    chunk[static_cast<size_t>(c)].stage = c * l.pp + l.stage;
    chunk[static_cast<size_t>(c)].pp = V;
    chunk[static_cast<size_t>(c)].pp_chunks = 1;
    st.push_back(pipeline_stage(m, c * l.pp + l.stage, V));
  }
  MemoryBreakdown r;

  // Weights: f32 masters, plus the bf16 compute copy when activations are
  // narrower than the masters (TransNormerLLM::place, ParameterSet::compute).
  // The model's parameter groups over the stage's chunks, in order; the
  // embedding tied on one stage is used by both its ends.
  std::vector<int64_t> groups;
  int64_t P = 0;
  for (int c = 0; c < l.pp_chunks; ++c) {
    for (int64_t g : stage_parameter_groups(m, c * l.pp + l.stage, V, l.tp)) {
      groups.push_back(g);
      P += g;
    }
  }
  const int tied = m.tie_embeddings && V == 1 ? 0 : -1;
  // ZeRO shards over the data-parallel group, which is dp·sp ranks when
  // sp > 1 (ProcessGrid::data_parallel); Parameter::grad has the master dtype.
  fill_optimizer_side(r, groups, l.zero, static_cast<int64_t>(l.dp) * l.sp, s.master, s.e, tied);

  std::vector<int64_t> chunk_bytes;
  for (const MemoryLayout& c : chunk) chunk_bytes.push_back(activation_bytes_per_micro_batch(m, c));
  fill_activations(r, l.schedule, l.stage, l.pp, chunk_bytes, l.micro_batches());

  for (int c = 0; c < l.pp_chunks; ++c) {
    const PipelineStage& cs = st[static_cast<size_t>(c)];
    for (int64_t layer = cs.first_layer; layer < cs.end_layer; ++layer)
      r.workspace = std::max(r.workspace, layer_backward_peak(m, layer, l, s));
    if (cs.last()) r.workspace = std::max(r.workspace, head_backward_peak(l, s));
  }

  // (DDP's GradientBuckets add nothing: every gradient is a view of its
  // bucket's buffer; ZeRO's padding is counted above.)
  // The pipeline (Trainer::train_step): every activation sent forward and
  // every gradient sent back stays alive until the step's end (`sent`), one
  // [B, Ns, D] per micro-batch each way (and chunk); plus the receive buffer
  // in use.
  if (l.pp > 1) {
    const int64_t boundary = s.B * s.Ns * s.D * s.e;
    int64_t directions = 0;
    for (const PipelineStage& cs : st) directions += (cs.first() ? 0 : 1) + (cs.last() ? 0 : 1);
    r.communication_buffers += directions * l.micro_batches() * boundary + boundary;
  }
  // LASP: the last state sent stays in PendingSends until the next call.
  if (l.sp > 1 && l.sp_kind == SequenceParallelKind::Lasp) {
    int64_t dk = m.head_dim();
    for (const PipelineStage& cs : st) {
      for (int64_t layer = cs.first_layer; layer < cs.end_layer; ++layer) dk = std::max(dk, key_dim(m, layer));
    }
    r.communication_buffers += state_bytes(s, dk);
  }

  // CO2's outer state is host memory (Co2OuterLoop, docs/gpu.md): round_start_
  // and the pseudo-gradient in flight (whole, padded to n when sharded), the
  // global point anchor_ and momentum_ (1/n each with --co2-shard-outer, and
  // then the reduce-scatter's output block), all in the master dtype; n = dp.
  if (l.co2_tau > 0) {
    const int64_t n = l.dp, shard = (P + n - 1) / n;
    r.co2_state = l.co2_shard_outer ? (2 * shard * n + 3 * shard) * s.master : 4 * P * s.master;
  }

  r.total = r.parameters + r.gradients + r.optimizer_state + r.activations + r.workspace +
            r.communication_buffers;
  return r;
}

MemoryBreakdown busiest_stage_memory(const ModelConfig& m, const MemoryLayout& layout) {
  MemoryBreakdown most;
  for (int stage = 0; stage < layout.pp; ++stage) {
    MemoryLayout l = layout;
    l.stage = stage;
    const MemoryBreakdown b = memory_per_gpu(m, l);
    if (stage == 0 || b.total > most.total) most = b;
  }
  return most;
}

std::string memory_summary(const MemoryBreakdown& m) {
  auto gib = [](int64_t bytes) { return static_cast<double>(bytes) / kGiB; };
  return fmt::format(
      "parameters {:.2f}, gradients {:.2f}, optimizer {:.2f}, activations {:.2f} "
      "({} micro-batches in flight), workspace {:.2f}, buffers {:.2f} GiB{}",
      gib(m.parameters), gib(m.gradients), gib(m.optimizer_state), gib(m.activations),
      m.micro_batches_in_flight, gib(m.workspace), gib(m.communication_buffers),
      m.co2_state > 0 ? fmt::format("; CO2 host state {:.2f} GiB", gib(m.co2_state)) : "");
}

bool fits(const MemoryBreakdown& memory, const GpuSpec& gpu) {
  return static_cast<double>(memory.total) <= gpu.hbm_gib * kGiB;
}

std::string memory_overflow_message(const MemoryBreakdown& memory, const GpuSpec& gpu) {
  if (fits(memory, gpu)) return "";
  return fmt::format("needs {:.1f} GiB per GPU, {} has {:.4g} GiB",
                     static_cast<double>(memory.total) / kGiB, gpu.name, gpu.hbm_gib);
}

}  // namespace linpar::sim
