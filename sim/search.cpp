#include "sim/search.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <tuple>

#include "core/error.h"

namespace linpar::sim {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<int> divisors(int n) {
  std::vector<int> out;
  for (int d = 1; d <= n; ++d) {
    if (n % d == 0) out.push_back(d);
  }
  return out;
}

void validate(const SimModel& model, const SearchSpace& s) {
  if (s.seq_len < 1) user_error("--seq-len {}: must be positive", s.seq_len);
  if (s.global_batch < 1) user_error("--global-batch {}: must be positive", s.global_batch);
  if (s.max_micro_batch < 1)
    user_error("--max-micro-batch {}: must be positive", s.max_micro_batch);
  for (int64_t tau : s.co2_taus) {
    if (tau < 0) user_error("--co2-tau {}: must be 0 (off) or positive", tau);
  }
  if (s.co2_taus.empty()) user_error("--co2-tau: give at least one value (0: off)");
  for (size_t i = 0; i < s.co2_taus.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (s.co2_taus[i] == s.co2_taus[j])
        user_error("--co2-tau: {} is listed twice", s.co2_taus[i]);
    }
  }
  for (size_t i = 0; i < s.sp_kinds.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (s.sp_kinds[i] == s.sp_kinds[j])
        user_error("--sp-kinds: {} is listed twice", sp_kind_name(s.sp_kinds[i]));
    }
  }
  if (s.schedules.size() == 2 && s.schedules[0] == s.schedules[1])
    user_error("a pipeline schedule is listed twice");
  if (s.schedules.empty()) user_error("no pipeline schedule to search");
  if (s.pp_chunks.empty()) user_error("--pp-chunks: give at least one value (1: plain 1F1B)");
  for (size_t i = 0; i < s.pp_chunks.size(); ++i) {
    if (s.pp_chunks[i] < 1) user_error("--pp-chunks {}: must be positive", s.pp_chunks[i]);
    for (size_t j = 0; j < i; ++j) {
      if (s.pp_chunks[i] == s.pp_chunks[j]) user_error("--pp-chunks: {} is listed twice", s.pp_chunks[i]);
    }
  }
  if (!model.is_transnormer()) {
    for (SequenceParallelKind k : s.sp_kinds) {
      if (k != SequenceParallelKind::Ulysses) {
        user_error(
            "--sp-kinds {}: {} is a softmax transformer; its sequence parallelism is ulysses",
            sp_kind_name(k), model.name());
      }
    }
  }
}

// The layouts that share one micro-batch cost (one shard, pp, dp,
// micro-batch and recomputation) differ in these.
struct Variant {
  PipelineSchedule schedule;
  int pp_chunks;
  int zero;
  int64_t co2_tau;
};

// What one search shares: the model, the cluster, the cost source, and what
// it has found so far.
struct Search {
  const SimModel& model;
  const ClusterSpec& cluster;
  const CostModel& cost;
  SearchStats& stats;
  std::vector<SearchResult>& results;
  // Every SP rank's costed op plan per (tp, tp_sp, sp, SP kind, micro-batch,
  // recomputation): shared by every pp and dp of that shard.
  std::map<std::tuple<int, bool, int, int, int64_t, int>, ShardOps> shard_ops_cache = {};

  // Every layout of one shard (dp, tp, pp, sp, tp_sp, SP kind): the
  // micro-batches, recomputation modes and variants. A layout's memory comes
  // first; one that cannot fit is recorded with its overflow and never
  // costed. The micro-batch costs are computed once, for the first variant
  // that fits, and shared by the others (they depend on none of the
  // variants' knobs).
  void shard(SimLayout l, int64_t max_micro_batch, const std::vector<Variant>& variants) {
    const int64_t per_replica = l.global_batch / l.dp;
    for (int64_t mb = 1; mb <= max_micro_batch && per_replica % mb == 0; mb *= 2) {
      l.micro_batch = mb;
      for (Recompute recompute : {Recompute::None, Recompute::Selective, Recompute::Full}) {
        l.recompute = recompute;
        std::map<int, MicroBatchCosts> costs;  // by model chunks per stage
        std::optional<MemoryBreakdown> memory;
        SimLayout memory_of;  // the layout `memory` is of: CO2's τ does not change it, CO2 does
        for (const Variant& v : variants) {
          l.schedule = v.schedule;
          l.pp_chunks = v.pp_chunks;
          l.zero = v.zero;
          l.co2_tau = v.co2_tau;
          // Interleaving needs whole groups of pp micro-batches.
          if (l.pp_chunks > 1 && l.micro_batches() % l.pp != 0) continue;
          if (!memory || memory_of.schedule != l.schedule || memory_of.pp_chunks != l.pp_chunks ||
              memory_of.zero != l.zero || (memory_of.co2_tau > 0) != (l.co2_tau > 0)) {
            const Clock::time_point t = Clock::now();
            memory = layout_memory(model, l);
            memory_of = l;
            stats.memory_seconds += since(t);
          }
          SearchResult r;
          r.layout = l;
          r.memory = *memory;
          r.fits = fits(r.memory, cluster.gpu);
          if (!r.fits) {
            r.memory_message = memory_overflow_message(r.memory, cluster.gpu);
            results.push_back(std::move(r));
            continue;
          }
          auto cost_of = costs.find(l.pp_chunks);
          if (cost_of == costs.end()) {
            const Clock::time_point t = Clock::now();
            const auto key = std::make_tuple(l.tp, l.tp_sp, l.sp, static_cast<int>(l.sp_kind),
                                             l.micro_batch, static_cast<int>(l.recompute));
            auto it = shard_ops_cache.find(key);
            if (it == shard_ops_cache.end()) {
              it = shard_ops_cache.emplace(key, shard_ops(model, cluster, l, cost)).first;
              stats.plan_seconds += since(t);
            }
            cost_of = costs.emplace(l.pp_chunks, micro_batch_costs(model, cluster, l, cost, &it->second)).first;
            stats.costs_seconds += since(t);
            ++stats.micro_batch_costs;
          }
          const Clock::time_point t = Clock::now();
          const StepPrediction p = schedule_step(model, cluster, l, cost_of->second, cost, /*trace=*/false);
          stats.schedule_seconds += since(t);
          ++stats.schedules;
          static_cast<StepTimes&>(r) = p;  // the times and traffic, nothing else of the prediction
          results.push_back(std::move(r));
        }
      }
    }
  }
};

}  // namespace

std::vector<SearchResult> search_layouts(const SimModel& model, const ClusterSpec& cluster,
                                         const SearchSpace& space, const CostModel& cost,
                                         SearchStats* stats) {
  const Clock::time_point start = Clock::now();
  validate(cluster);
  validate(model, space);
  std::vector<SequenceParallelKind> kinds = space.sp_kinds;
  if (kinds.empty()) {
    kinds = model.is_transnormer()
                ? std::vector<SequenceParallelKind>{SequenceParallelKind::Lasp,
                                                    SequenceParallelKind::Lasp2,
                                                    SequenceParallelKind::AllGather,
                                                    SequenceParallelKind::Ulysses}
                : std::vector<SequenceParallelKind>{SequenceParallelKind::Ulysses};
  }
  SearchStats st;
  std::vector<SearchResult> results;
  Search search{model, cluster, cost, st, results};
  const int gpus = cluster.gpus();
  // Shard by shard (tp, sp, Megatron SP, SP kind), every pipeline depth and
  // data-parallel degree of it: the shard's costed op plans are built once
  // and dropped before the next shard, which keeps the search's memory to one
  // shard's plans.
  for (int tp : divisors(cluster.gpus_per_node)) {
    if (gpus % tp != 0) continue;
    for (int sp = 1; (gpus / tp) % sp == 0 && space.seq_len % sp == 0; sp *= 2) {
      for (bool tp_sp : {false, true}) {
        if (tp_sp && tp == 1) continue;
        for (size_t k = 0; k < (sp > 1 ? kinds.size() : 1); ++k) {
          for (int pp : divisors(gpus / tp / sp)) {
            if (pp > model.layers()) break;
            const int dp = gpus / tp / pp / sp;
            if (space.global_batch % dp != 0) continue;
            // ZeRO's stages where there is more than one rank to shard
            // over; CO2 where there is more than one replica and ZeRO is
            // off; a schedule where there is a pipeline.
            std::vector<Variant> variants;
            for (PipelineSchedule schedule : space.schedules) {
              if (pp == 1 && schedule != space.schedules.front()) continue;
              if (pp == 1) schedule = PipelineSchedule::OneFOneB;
              for (int chunks : space.pp_chunks) {
                if (chunks > 1 && (pp == 1 || schedule != PipelineSchedule::OneFOneB ||
                                   pp * chunks > model.layers())) {
                  continue;
                }
                const bool sharded = dp * sp > 1;
                for (int zero : sharded ? space.zero_stages : std::vector<int>{0}) {
                  if (zero > 0) {
                    variants.push_back({schedule, chunks, zero, 0});
                    continue;
                  }
                  for (int64_t tau : dp > 1 ? space.co2_taus : std::vector<int64_t>{0}) {
                    variants.push_back({schedule, chunks, 0, tau});
                  }
                }
              }
            }
            SimLayout l;
            l.dp = dp;
            l.tp = tp;
            l.pp = pp;
            l.sp = sp;
            l.tp_sp = tp_sp;
            l.sp_kind = sp > 1                   ? kinds[k]
                        : model.is_transnormer() ? SequenceParallelKind::Lasp
                                                 : SequenceParallelKind::Ulysses;
            l.seq_len = space.seq_len;
            l.global_batch = space.global_batch;
            l.element_bytes = space.element_bytes;
            l.grad_reduce_overlap = space.grad_reduce_overlap;
            l.grad_reduce_bytes = space.grad_reduce_bytes;
            l.grad_accumulate_add = space.grad_accumulate_add;
            l.lasp_blocking = space.lasp_blocking && l.sp_kind == SequenceParallelKind::Lasp;
            try {
              model.validate(l.shard(), pp, space.seq_len);
            } catch (const UserError& e) {
              if (st.rejected++ == 0) st.first_rejection = e.what();
              continue;
            }
            search.shard(l, space.max_micro_batch, variants);
          }
          search.shard_ops_cache.clear();
        }
      }
    }
  }
  std::stable_sort(results.begin(), results.end(),
                   [](const SearchResult& a, const SearchResult& b) {
                     if (a.fits != b.fits) return a.fits;
                     if (a.fits) return a.tokens_per_gpu_per_s > b.tokens_per_gpu_per_s;
                     return a.memory.total < b.memory.total;
                   });
  st.evaluated = static_cast<int64_t>(results.size());
  for (const SearchResult& r : results) st.fitting += r.fits;
  st.seconds = since(start);
  if (stats != nullptr) *stats = st;
  return results;
}

std::string describe_layout(const SimLayout& l) {
  return fmt::format(
      "dp {}, tp {}{}, pp {}{}, sp {}{}, micro-batch {}, recompute {}, zero {}, co2 {}", l.dp, l.tp,
      l.tp_sp ? " (sp)" : "", l.pp,
      l.pp > 1 && l.schedule == PipelineSchedule::GPipe ? " (gpipe)"
      : l.pp_chunks > 1                                 ? fmt::format(" ({} chunks interleaved)", l.pp_chunks)
                                                        : "",
      l.sp,
      l.sp > 1 ? fmt::format(" ({})", sp_kind_name(l.sp_kind)) : "", l.micro_batch,
      recompute_name(l.recompute), l.zero, l.co2_tau > 0 ? fmt::format("τ={}", l.co2_tau) : "off");
}

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The knobs a layout is made of; the degrees (dp, tp, pp, sp) count as one,
// since changing one of them changes another.
enum Knob { kDegrees, kTpSp, kSpKind, kMicroBatch, kRecompute, kZero, kCo2, kSchedule, kKnobs };

bool same_knob(const SimLayout& a, const SimLayout& b, int knob) {
  switch (knob) {
    case kDegrees:
      return a.dp == b.dp && a.tp == b.tp && a.pp == b.pp && a.sp == b.sp;
    case kTpSp:
      return a.tp_sp == b.tp_sp;
    case kSpKind:
      return a.sp_kind == b.sp_kind || (a.sp == 1 && b.sp == 1);
    case kMicroBatch:
      return a.micro_batch == b.micro_batch;
    case kRecompute:
      return a.recompute == b.recompute;
    case kZero:
      return a.zero == b.zero;
    case kCo2:
      return a.co2_tau == b.co2_tau;
    case kSchedule:
      return (a.schedule == b.schedule && a.pp_chunks == b.pp_chunks) || (a.pp == 1 && b.pp == 1);
  }
  return true;
}

// The one knob in which b differs from a, or -1 (none or several).
int only_difference(const SimLayout& a, const SimLayout& b) {
  int knob = -1;
  for (int k = 0; k < kKnobs; ++k) {
    if (same_knob(a, b, k)) continue;
    if (knob >= 0) return -1;
    knob = k;
  }
  return knob;
}

// How b's value of the knob reads: "micro-batch 2", "dp 4, sp 4".
std::string knob_value(const SimLayout& a, const SimLayout& b, int knob) {
  switch (knob) {
    case kDegrees: {
      std::string out;
      for (auto [name, x, y] : {std::tuple{"dp", a.dp, b.dp},
                                {"tp", a.tp, b.tp},
                                {"pp", a.pp, b.pp},
                                {"sp", a.sp, b.sp}}) {
        if (x != y) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", name, y);
      }
      return out;
    }
    case kTpSp:
      return b.tp_sp ? "tp with sp" : "tp without sp";
    case kSpKind:
      return fmt::format("sp kind {}", sp_kind_name(b.sp_kind));
    case kMicroBatch:
      return fmt::format("micro-batch {}", b.micro_batch);
    case kRecompute:
      return fmt::format("recompute {}", recompute_name(b.recompute));
    case kZero:
      return fmt::format("zero {}", b.zero);
    case kCo2:
      return b.co2_tau > 0 ? fmt::format("CO2 τ={}", b.co2_tau) : "no CO2";
    case kSchedule:
      return b.schedule == PipelineSchedule::GPipe ? "gpipe"
             : b.pp_chunks > 1                      ? fmt::format("1f1b interleaved over {} chunks", b.pp_chunks)
                                                    : "1f1b";
  }
  return "";
}

// The result of layout `want`, if it was searched.
const SearchResult* find_layout(const std::vector<SearchResult>& results, const SimLayout& want) {
  for (const SearchResult& r : results) {
    bool same = true;
    for (int k = 0; k < kKnobs && same; ++k) same = same_knob(r.layout, want, k);
    if (same) return &r;
  }
  return nullptr;
}

// What CO2's outer all-reduce adds to the step beyond the inner steps.
double co2_excess(const SearchResult& r) {
  return r.step_seconds - r.compute_seconds - r.bubble_seconds;
}

// "ZeRO-1 frees 9.1 GiB" / "full recomputation frees 20.3 GiB: without it the
// layout needs 93.4 GiB": what a memory knob of the winner buys, against the
// same layout without it.
std::string memory_reason(const std::vector<SearchResult>& results, const SearchResult& w,
                          const SimLayout& without, const std::string& what) {
  const SearchResult* other = find_layout(results, without);
  if (other == nullptr) return "";
  const double saved = static_cast<double>(other->memory.total - w.memory.total) / kGiB;
  if (!other->fits) {
    return fmt::format("{} frees {:.1f} GiB: without it the layout needs {:.1f} GiB", what, saved,
                       static_cast<double>(other->memory.total) / kGiB);
  }
  if (saved > 0) return fmt::format("{} frees {:.1f} GiB", what, saved);
  return "";
}

// "the next best one change away (micro-batch 1) loses 7% to compute (+12 ms per step)".
std::string comparison(const SearchResult& w, const SearchResult& other, const std::string& which,
                       const std::string& change) {
  const double loss = 1 - other.tokens_per_gpu_per_s / w.tokens_per_gpu_per_s;
  if (loss < 1e-4) return fmt::format("{} ({}) is within 0.01%", which, change);
  const double compute = other.compute_seconds - w.compute_seconds;
  const double wait = other.bubble_seconds - w.bubble_seconds;
  const double outer = co2_excess(other) - co2_excess(w);
  const bool pipelined = w.layout.pp > 1 || other.layout.pp > 1;
  std::string where = compute >= wait ? "compute"
                      : pipelined     ? "pipeline bubble and exposed communication"
                                      : "exposed communication";
  double delta = std::max(compute, wait);
  if (outer > delta) {
    where = "the CO2 outer all-reduce";
    delta = outer;
  }
  return fmt::format("{} ({}) loses {:.3g}% to {} (+{:.3g} ms per step)", which, change, 100 * loss,
                     where, delta * 1e3);
}

}  // namespace

std::string explain_winner(const std::vector<SearchResult>& results) {
  if (results.empty()) return "";
  const SearchResult& w = results.front();
  const SimLayout& l = w.layout;
  if (!w.fits)
    return fmt::format("no layout fits: the smallest ({}) {}", describe_layout(l),
                       w.memory_message);
  std::vector<std::string> parts;
  if (l.tp > 1) {
    parts.push_back(fmt::format("tp {}{} keeps each layer's all-reduce inside a node", l.tp,
                                l.tp_sp ? " with sp" : ""));
  }
  const double idle = w.step_seconds > 0 ? w.bubble_seconds / w.step_seconds : 0;
  if (l.pp > 1) {
    parts.push_back(fmt::format("pp {} with {} micro-batches idles {:.1f}% of the step", l.pp,
                                l.micro_batches(), 100 * idle));
  } else {
    parts.push_back(
        idle < 1e-3
            ? std::string("no pipeline, and communication hides behind compute")
            : fmt::format("no pipeline; {:.1f}% of the step waits on communication", 100 * idle));
  }
  if (l.sp > 1) {
    parts.push_back(fmt::format("sp {} ({}) cuts each sequence into {}-token chunks", l.sp,
                                sp_kind_name(l.sp_kind), l.seq_len / l.sp));
  }
  if (l.zero > 0) {
    SimLayout without = l;
    without.zero = 0;
    if (std::string r = memory_reason(results, w, without, fmt::format("ZeRO-{}", l.zero));
        !r.empty())
      parts.push_back(r);
  }
  if (l.recompute != Recompute::None) {
    SimLayout without = l;
    without.recompute = Recompute::None;
    const std::string what = fmt::format("{} recomputation", recompute_name(l.recompute));
    if (std::string r = memory_reason(results, w, without, what); !r.empty()) parts.push_back(r);
  }
  if (l.co2_tau > 0) {
    parts.push_back(fmt::format("CO2 hides the outer all-reduce behind {} local steps", l.co2_tau));
  }
  // The best fitting layout one knob away, and where its time goes; and,
  // when that knob is not the split of the GPUs, the best other split too.
  const SearchResult* next = nullptr;
  const SearchResult* next_split = nullptr;
  for (size_t i = 1; i < results.size() && results[i].fits && next_split == nullptr; ++i) {
    const int knob = only_difference(l, results[i].layout);
    if (knob >= 0 && next == nullptr) next = &results[i];
    if (knob == kDegrees) next_split = &results[i];
  }
  if (next == nullptr) parts.push_back("no fitting layout is one change away");
  for (const SearchResult* other : {next, next_split}) {
    if (other == nullptr || (other == next_split && next_split == next)) continue;
    const std::string change = knob_value(l, other->layout, only_difference(l, other->layout));
    const std::string which =
        other == next ? "the next best one change away" : "the best other split";
    parts.push_back(comparison(w, *other, which, change));
  }
  std::string line = fmt::format("{} wins at {:.0f} tokens/GPU/s (MFU {:.1f}%, {:.1f} GiB per GPU)",
                                 describe_layout(l), w.tokens_per_gpu_per_s, 100 * w.mfu,
                                 static_cast<double>(w.memory.total) / kGiB);
  for (size_t i = 0; i < parts.size(); ++i) line += (i == 0 ? ": " : "; ") + parts[i];
  return line;
}

}  // namespace linpar::sim
