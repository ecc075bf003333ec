#include "parallel/step_plan.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <unordered_map>

#include "core/op_stats.h"
#include "core/plan_communicator.h"
#include "parallel/step_update.h"

namespace linpar {

namespace {

StepTail plan(const Layout& l, const StepTailShape& s) {
  LINPAR_CHECK(s.parameters >= s.tied_embedding && s.tied_embedding >= 0,
               "a step's tail of {} parameters, {} of them a tied embedding", s.parameters,
               s.tied_embedding);
  if (s.parameters == 0) return {};  // nothing to update (hand-made costs in tests)
  // The CPU computes in f64 or f32; the GPU keeps f32 master weights and
  // gradients with bf16 compute copies (Trainer).
  const DType values = s.element_bytes == 8 ? DType::F64 : DType::F32;
  const DType grads = s.grad_reduce_bytes == 2 ? DType::BF16 : values;
  LINPAR_CHECK(
      s.grad_reduce_bytes == 2 || static_cast<size_t>(s.grad_reduce_bytes) == dtype_size(values),
      "gradients of {} bytes beside {} values", s.grad_reduce_bytes, dtype_name(values));
  ParameterSet params(Device::Meta);
  auto add = [&](const std::string& name, int64_t elements, bool in_norm) {
    Parameter& p = params.add_normal(name, {elements}, values, 0, 0.0);
    p.grad = Tensor::empty({elements}, grads, Device::Meta);
    if (s.element_bytes == 2) p.compute = Tensor::empty({elements}, DType::BF16, Device::Meta);
    p.counted_in_norm = in_norm;
  };
  // In the model's order: the first stage's embedding comes first, the last
  // stage's copy last (after the head's norm); which ZeRO-1 shard holds the
  // copy the norm leaves out follows from it.
  const bool tied_first = s.tied_embedding > 0 && !s.last_stage;
  if (l.zero > 0) {
    // ZeRO shards group by group: one parameter per group, the tied
    // embedding's copy its own (the first group, or the last stage's last).
    LINPAR_CHECK(!s.groups.empty(), "a ZeRO step's tail without its parameter groups");
    int64_t sum = 0;
    for (size_t i = 0; i < s.groups.size(); ++i) {
      const bool tied = s.tied_embedding > 0 && (tied_first ? i == 0 : i + 1 == s.groups.size());
      LINPAR_CHECK(!tied || s.groups[i] == s.tied_embedding,
                   "the tied embedding's group of {}, not {}", s.groups[i], s.tied_embedding);
      add(tied ? std::string("embedding") : fmt::format("group{}", i), s.groups[i],
          !(tied && s.last_stage));
      sum += s.groups[i];
    }
    LINPAR_CHECK(sum == s.parameters, "parameter groups of {} elements, {} parameters", sum,
                 s.parameters);
  } else {
    if (tied_first) add("embedding", s.tied_embedding, true);
    if (s.parameters > s.tied_embedding) add("parameters", s.parameters - s.tied_embedding, true);
    if (s.tied_embedding > 0 && s.last_stage) add("embedding", s.tied_embedding, false);
  }
  std::vector<std::vector<Parameter*>> groups;
  for (Parameter& p : params.all()) groups.push_back({&p});

  // The ranks that average a shard's gradients: dp·sp, or with CO2 the SP
  // ranks of one replica (the replicas meet in the outer loop). The groups
  // as the trainer builds them (Trainer's constructor).
  const bool co2 = l.co2_tau > 0;
  const int ranks = co2 ? l.sp : l.dp * l.sp;
  LINPAR_CHECK(s.rank >= 0 && s.rank < ranks, "a step's tail for rank {} of {}", s.rank, ranks);
  PlanCommunicator gradients(co2 ? "sp" : "dp", s.rank, ranks, s.averages_inside);
  PlanCommunicator tp_group("tp", 0, l.tp), pp_group("pp", 0, l.pp), embedding("embedding", 0, 2);
  const TensorParallel tp{&tp_group, 0, l.tp};
  const SumOverModelParallel sum = [&](Tensor& t) {
    tp.all_reduce(t);
    if (l.pp > 1) pp_group.all_reduce(t);
  };
  // (The bucket size changes how many all-reduces, not their sum.)
  const StepOptimizer o =
      make_step_optimizer(params, groups, gradients, l.zero, AdamWConfig{}, sum, int64_t{4} << 20);
  StepUpdate update;
  update.params = &params;
  update.buckets = o.buckets.get();
  update.zero = o.zero.get();
  update.optimizer = o.adamw.get();
  update.sum_model_parallel = sum;
  if (s.tied_embedding > 0) update.embedding = &embedding;

  StepTail tail;
  {
    OpRecorder recorder;
    if (l.zero >= 2) {
      // The micro-batches' hooks as the model calls them (model/transnormer.cpp),
      // outside any op as in the run: ZeRO-3's gathers in forward (the
      // embedding again for a head it is tied to), then backward's order.
      ParameterHooks* hooks = o.hooks();
      const int G = static_cast<int>(groups.size());
      std::vector<int> order;
      for (int g = 0; g < G; ++g) order.push_back(g);
      if (s.embedding_at_both_ends) order.push_back(0);
      for (int64_t micro = 0; micro < l.micro_batches(); ++micro) {
        for (size_t k = 0; k < order.size(); ++k) {
          hooks->before_forward(order[k], k + 1 < order.size() ? order[k + 1] : -1);
          hooks->after_forward(order[k]);
        }
        for (size_t k = order.size(); k-- > 0;) {
          hooks->before_backward(order[k], k > 0 ? order[k - 1] : -1);
          if (std::find(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order[k]) ==
              order.begin() + static_cast<std::ptrdiff_t>(k))
            hooks->after_backward(order[k], micro + 1 == l.micro_batches());
        }
      }
    }
    update.update(1e-3, 1.0);
    update.refresh_compute(false);  // (CO2 replaces the values at a round's end only)
    std::vector<RecordedOp> ran = recorder.take_ops();
    // The hooks' collectives are the reduction's (their passes over the
    // shards, outside ops in the run too, are not planned).
    LINPAR_CHECK(l.zero >= 2 ||
                     (recorder.outside().collectives.empty() && recorder.outside().bytes_read == 0),
                 "a step's update did work outside its ops");
    tail.ops.reserve(ran.size() + 1);
    for (RecordedOp& r : ran) tail.ops.push_back(planned_op(std::move(r)));
    if (l.zero >= 2) {
      for (PlannedOp& op : tail.ops) {
        if (op.pass != Pass::Reduce) continue;
        // Summed by kind and group (their bytes are what the simulator
        // reads of them; it times them group by group itself, sim/step.cpp).
        for (const RecordedCollective& c : recorder.outside().collectives) {
          const PlannedCollective planned{c.kind, comm_group_named(c.group), c.bytes};
          auto same = std::find_if(op.collectives.begin(), op.collectives.end(),
                                   [&](const PlannedCollective& x) {
                                     return x.kind == planned.kind && x.group == planned.group;
                                   });
          if (same != op.collectives.end()) {
            same->bytes += planned.bytes;
          } else {
            op.collectives.push_back(planned);
          }
        }
        break;
      }
    }
  }
  if (co2) {
    // The outer reduction of the pseudo-gradient (the master values' dtype),
    // once per τ steps (stated: see the header). --co2-shard-outer pads it
    // to a multiple of dp and reduce-scatters it, and all-gathers the
    // updated global point (Co2OuterLoop::global_point: raw MPI, which the
    // run does not record; the op-plan test compares the unsharded form).
    const int64_t element = static_cast<int64_t>(dtype_size(values));
    PlannedOp outer;
    outer.name = "co2.outer_all_reduce";
    outer.pass = Pass::Outer;
    outer.layer = kStepLayer;
    if (l.co2_shard_outer) {
      const int64_t shard = (s.parameters + l.dp - 1) / l.dp;
      outer.collectives = {{CollectiveKind::ReduceScatter, CommGroup::Dp, shard * element},
                           {CollectiveKind::AllGather, CommGroup::Dp, shard * element}};
    } else {
      outer.collectives = {{CollectiveKind::AllReduce, CommGroup::Dp, s.parameters * element}};
    }
    tail.ops.push_back(std::move(outer));
  }
  return tail;
}

// What a tail depends on: the shape, the degrees, ZeRO and whether CO2 runs.
struct TailKey {
  StepTailShape shape;
  int dp, tp, pp, sp, zero;
  int64_t micro_batches;  // ZeRO-2 and -3's hooks run once per micro-batch (else 0)
  bool co2, co2_shard_outer;
  bool operator==(const TailKey&) const = default;
};
struct TailKeyHash {
  size_t operator()(const TailKey& k) const {
    const StepTailShape& s = k.shape;
    size_t h = std::hash<int64_t>()(s.parameters);
    for (int64_t g : s.groups) h = h * 1000003u ^ std::hash<int64_t>()(g);
    for (int64_t v :
         {s.tied_embedding, int64_t{s.last_stage}, int64_t{s.rank}, s.grad_reduce_bytes,
          s.element_bytes, int64_t{s.averages_inside}, int64_t{k.dp}, int64_t{k.tp}, int64_t{k.pp},
          int64_t{k.sp}, int64_t{k.zero}, int64_t{k.co2}, int64_t{k.co2_shard_outer},
          k.micro_batches, int64_t{s.embedding_at_both_ends}}) {
      h = h * 1000003u ^ std::hash<int64_t>()(v);
    }
    return h;
  }
};

}  // namespace

std::shared_ptr<const StepTail> plan_step_tail(const Layout& l, const StepTailShape& s) {
  // A layout search asks for the same few tails many times; a few thousand
  // cover one (past that, start over).
  thread_local std::unordered_map<TailKey, std::shared_ptr<const StepTail>, TailKeyHash> kept;
  const TailKey key{s,
                    l.dp,
                    l.tp,
                    l.pp,
                    l.sp,
                    l.zero,
                    l.zero >= 2 ? l.micro_batches() : 0,
                    l.co2_tau > 0,
                    l.co2_shard_outer};
  if (auto it = kept.find(key); it != kept.end()) return it->second;
  if (kept.size() >= 4096) kept.clear();
  auto tail = std::make_shared<const StepTail>(plan(l, s));
  kept.emplace(key, tail);
  return tail;
}

}  // namespace linpar
