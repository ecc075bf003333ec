#include "sim/step.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "model/transnormer.h"
#include "parallel/step_plan.h"
#include "sim/collectives.h"

namespace linpar::sim {

namespace {

bool on_stage(int64_t layer, const PipelineStage& st) {
  if (layer == -1) return st.first();
  if (layer == -2) return st.last();
  return layer >= st.first_layer && layer < st.end_layer;
}

// The sim's payload S from the plan's (communicator's) payload: an
// all-gather's output and a reduce-scatter's input are n times theirs.
int64_t sim_payload(CollectiveKind kind, int64_t bytes, int ranks) {
  if (kind == CollectiveKind::AllGather || kind == CollectiveKind::ReduceScatter) return bytes * ranks;
  return bytes;
}

// Everything the two phases share: the model, the cluster, the cost source
// and where each group sits.
struct Costing {
  const SimModel& model;
  const ClusterSpec& cluster;
  const CostModel& cost;
  GroupPlacement tp, sp, pp, grad;  // grad: the dp·sp ranks that average a shard's gradients
  GroupPlacement dp;                // CO2's outer group
  GroupPlacement embedding;         // the first and the last stage of one column (a tied embedding)

  Costing(const SimModel& m, const ClusterSpec& c, const SimLayout& l, const CostModel& k)
      : model(m),
        cluster(c),
        cost(k),
        tp(place_group(l.tp, 1, c.gpus_per_node)),
        sp(place_group(l.sp, l.tp, c.gpus_per_node)),
        pp(place_group(l.pp, l.tp * l.sp * l.dp, c.gpus_per_node)),
        grad(place_group(l.dp * l.sp, l.tp, c.gpus_per_node)),
        dp(place_group(l.dp, l.tp * l.sp, c.gpus_per_node)),
        embedding(l.pp > 1 ? place_group(2, l.tp * l.sp * l.dp * (l.pp - 1), c.gpus_per_node)
                           : place_group(1, 1, c.gpus_per_node)) {}

  double op(const PlannedOp& o) const {
    if (cost.profile == nullptr) return op_seconds(o, cluster.gpu, cost.efficiency);
    return profile_op_seconds(o, *cost.profile, cluster.gpu, cost.efficiency);
  }
  // Compute and collectives sharing a GPU (sim/engine.h): the profile's
  // measurement when it has one, else the GPU's.
  Interference interference() const {
    if (cost.profile != nullptr && cost.profile->has_overlap) {
      return {cost.profile->overlap_compute_slowdown, cost.profile->overlap_comm_slowdown};
    }
    return {cluster.gpu.overlap_compute_slowdown, cluster.gpu.overlap_comm_slowdown};
  }
  // A measured rate is used for groups inside one node (the profile measures
  // consecutive ranks of one machine); the alpha-beta model otherwise.
  double collective(CollectiveKind kind, int64_t payload, const GroupPlacement& g) const {
    if (cost.profile != nullptr && g.nodes == 1 && g.ranks > 1) {
      if (auto t = profile_collective_seconds(kind, payload, g.ranks, *cost.profile)) return *t;
    }
    return collective_seconds(kind, payload, g, cluster);
  }
};

// One op of one SP rank in the first phase.
struct RankOp {
  const PlannedOp* op;
  double seconds;  // compute plus blocking TP collectives
  int64_t layer;
  const ShardOps::Op* info = nullptr;  // its SP traffic
};

// The first phase for one stage and one direction: every SP rank's ops as
// tasks on its compute stream, SP traffic on the comm streams. Returns the
// makespan; `layer_done` gets each layer's latest finish over the ranks.
// `alike`: every rank runs the same ops (Ulysses, one rank).
// `ops`: every task for a trace (process = SP rank; alike ranks then all
// scheduled, with the same times).
double simulate_sp_ranks(const Costing& c, const SimLayout& l, const std::vector<const std::vector<RankOp>*>& ranks,
                         bool alike, bool backward, std::vector<std::pair<int64_t, double>>* layer_done,
                         std::vector<TracedTask>* ops = nullptr) {
  const int T = static_cast<int>(ranks.size());
  if (alike && ops == nullptr) {
    // Alike ranks arrive at each SP collective together and leave it
    // together, with nothing else on their comm streams (alike ranks send
    // to no neighbour): each rank's ops and collectives back to back, what
    // the schedule below gives with the same arithmetic, without building
    // it (the test compares the two).
    double finish = 0, previous = 0;
    int64_t layer = -3;
    for (const RankOp& ro : *ranks[0]) {
      if (layer_done != nullptr && ro.layer != layer && layer != -3) {
        layer_done->push_back({layer, finish - previous});
        previous = finish;
      }
      layer = ro.layer;
      finish = finish + ro.seconds;
      LINPAR_CHECK(!ro.info->sp_send, "{}: alike SP ranks send to a neighbour", ro.op->name);
      if (ro.info->sp_group) finish = finish + ro.info->sp_group_seconds;
    }
    if (layer_done != nullptr && layer != -3) layer_done->push_back({layer, finish - previous});
    return finish;
  }
  // The engine (sim/engine.h; nothing interferes in this phase): one rank
  // per SP rank.
  Schedule s(T, {}, ops != nullptr);
  std::vector<int64_t> task_layer;  // by task id
  std::vector<Resource> all_comm;   // every rank's comm stream: an SP collective's
  for (int q = 0; q < T; ++q) all_comm.push_back({q, Stream::Comm});
  // A task on one stream of rank r (r < 0: on every rank's comm stream).
  auto add = [&](const RankOp& ro, int r, Stream stream, double seconds, const int* after,
                 size_t n) {
    const std::span<const int> deps(after, n);
    const int id = r >= 0 ? s.add(ro.op->name.c_str(), Resource{r, stream}, seconds, deps)
                          : s.add(ro.op->name.c_str(), all_comm, seconds, deps);
    task_layer.push_back(ro.layer);
    if (ops != nullptr) {
      // Compute tasks are ops: their class goes with them (the trace's "cat").
      const char* category = stream == Stream::Compute ? op_class_name(ro.info->cls) : "";
      for (int q = r >= 0 ? r : 0; q < (r >= 0 ? r + 1 : T); ++q) {
        ops->push_back({ro.op->name, q, stream, s.start(id), s.finish(id), category});
      }
    }
    return id;
  };
  std::vector<size_t> next(static_cast<size_t>(T), 0);
  std::vector<int> last(static_cast<size_t>(T), -1);  // each rank's last task (compute order)
  // LASP's hops: (layer, receiver) -> the send task.
  std::map<std::pair<int64_t, int>, int> mailbox;
  // Collectives over all SP ranks, in the order every rank issues them: the
  // k-th one's compute task per rank (-1: not arrived) and its own task.
  std::vector<std::vector<int>> arrived;
  std::vector<int> collective_task;
  std::vector<size_t> issued(static_cast<size_t>(T), 0);  // group collectives each rank has passed
  bool progress = true;
  while (progress) {
    progress = false;
    for (int r = 0; r < T; ++r) {
      const size_t ri = static_cast<size_t>(r);
      while (next[ri] < ranks[ri]->size()) {
        const RankOp& ro = (*ranks[ri])[next[ri]];
        const ShardOps::Op& info = *ro.info;
        int after[2];
        size_t n = 0;
        if (last[ri] >= 0) after[n++] = last[ri];
        // A LASP rank waits for its neighbour's state (gradient) here.
        if (backward ? info.receives_backward : info.receives_forward) {
          auto it = mailbox.find({ro.layer, r});
          if (it == mailbox.end()) break;  // not sent yet: another rank first
          after[n++] = it->second;
        }
        // An SP collective over every rank: the op's compute on each rank,
        // then one task over all their comm streams once every rank has
        // arrived; each rank's next op waits for it.
        if (info.sp_group) {
          const size_t k = issued[ri];
          if (arrived.size() <= k) {
            arrived.resize(k + 1, std::vector<int>(static_cast<size_t>(T), -1));
            collective_task.resize(k + 1, -1);
          }
          std::vector<int>& in = arrived[k];
          if (in[ri] < 0) in[ri] = add(ro, r, Stream::Compute, ro.seconds, after, n);
          if (std::count(in.begin(), in.end(), -1) > 0) break;  // the others have not arrived yet
          if (collective_task[k] < 0) {
            collective_task[k] =
                add(ro, -1, Stream::Comm, info.sp_group_seconds, in.data(), in.size());
          }
          last[ri] = collective_task[k];
          ++issued[ri];
          ++next[ri];
          progress = true;
          continue;
        }
        const int task = add(ro, r, Stream::Compute, ro.seconds, after, n);
        last[ri] = task;
        if (info.sp_send) {
          const int peer = backward ? r - 1 : r + 1;
          LINPAR_CHECK(peer >= 0 && peer < T, "{} sends outside the SP group", ro.op->name);
          // The sender's stream only: the runtime receives on a communicator
          // of the other direction, so a rank's own sends never queue
          // behind what it receives (and the receiver waits through `after`).
          const int sent = add(ro, r, Stream::P2P, info.sp_send_seconds, &task, 1);
          mailbox[{ro.layer, peer}] = sent;
          if (l.lasp_blocking) last[ri] = sent;  // a blocking send: the rank's next op waits for it
        }
        ++next[ri];
        progress = true;
      }
    }
  }
  for (int r = 0; r < T; ++r) {
    LINPAR_CHECK(next[static_cast<size_t>(r)] == ranks[static_cast<size_t>(r)]->size(),
                 "SP rank {}'s ops could not be placed", r);
  }
  if (layer_done != nullptr) {
    // Each layer's latest finish over the ranks; a layer's time is what its
    // finish adds to the previous layer's (execution order).
    std::map<int64_t, double> latest;
    std::vector<int64_t> order;
    for (size_t id = 0; id < s.size(); ++id) {
      const int64_t layer = task_layer[id];
      if (!latest.count(layer)) order.push_back(layer);
      latest[layer] = std::max(latest[layer], s.finish(static_cast<int>(id)));
    }
    double previous = 0;
    for (int64_t layer : order) {
      const double end = std::max(latest[layer], previous);
      layer_done->push_back({layer, end - previous});
      previous = end;
    }
  }
  return s.makespan();
}

}  // namespace

int64_t stage_parameters(const ModelConfig& m, int stage, int stages, int tp) {
  int64_t n = 0;
  for (int64_t g : stage_parameter_groups(m, stage, stages, tp)) n += g;
  return n;
}

std::vector<int64_t> stage_parameter_groups(const ModelConfig& m, int stage, int stages, int tp) {
  const PipelineStage st = pipeline_stage(m, stage, stages);
  const int64_t D = m.width, F = m.glu_dim, V = m.vocab_size;
  std::vector<int64_t> groups;
  groups.reserve(static_cast<size_t>(st.end_layer - st.first_layer) + 2);
  if (st.first()) groups.push_back(V * D / tp);  // the embedding
  for (int64_t l = st.first_layer; l < st.end_layer; ++l) {
    groups.push_back((4 * D * D + D * D + 3 * D * F) / tp + (m.layer_uses_lrpe(l) ? D / tp : 0));
  }
  // The LM head: its own matrix, or the tied embedding (a copy on the last
  // stage when the pipeline separates them).
  if (st.last() && (!m.tie_embeddings || !st.first())) groups.push_back(V * D / tp);
  return groups;
}

void validate_layout(const SimModel& model, const ClusterSpec& cluster, const SimLayout& l) {
  validate(cluster);
  linpar::validate_layout(l);  // what `linpar train` refuses of any model, in its words
  if (l.world() != cluster.gpus()) {
    user_error("layout dp {} × tp {} × pp {} × sp {} = {} GPUs, the cluster has {}", l.dp, l.tp, l.pp, l.sp,
               l.world(), cluster.gpus());
  }
  if (l.grad_reduce_bytes != 2 && l.grad_reduce_bytes != 4) {
    user_error("gradient reduction in {}-byte elements: expected 2 (bf16/fp16) or 4 (f32)", l.grad_reduce_bytes);
  }
  if (l.lasp_blocking && l.sp_kind != SequenceParallelKind::Lasp) {
    user_error("--lasp-ring blocking: models the ring of --sp-kind lasp; the layout's SP kind is {}",
               sp_kind_name(l.sp_kind));
  }
  if (l.pp_chunks > 1 && l.virtual_stages() > model.layers()) {
    user_error("--pp {} × --pp-chunks {} = {} model chunks: the model has {} layers", l.pp,
               l.pp_chunks, l.virtual_stages(), model.layers());
  }
  model.validate(l.shard(), l.virtual_stages(), l.seq_len);
}

namespace {

// What an op costs apart from its collectives, for the memo below: every
// field of the op that its time depends on (sim/op_costs.h,
// sim/profile_costs.h), and where it waits for a ring neighbour.
struct OpCostKey {
  OpKind kind;
  Pass pass;
  RingReceive receive;
  int64_t flops, bytes_read, bytes_written;
  MatmulShape matmul;
  CoreShape core;
  bool operator==(const OpCostKey&) const = default;
};
struct OpCostKeyHash {
  size_t operator()(const OpCostKey& k) const {
    size_t h = static_cast<size_t>(k.kind) * 31u + static_cast<size_t>(k.pass) * 7u +
               static_cast<size_t>(k.receive);
    for (int64_t x : {k.flops, k.bytes_read, k.bytes_written, k.matmul.batch, k.matmul.m,
                      k.matmul.n, k.matmul.k, static_cast<int64_t>(k.matmul.weight), k.core.scores,
                      static_cast<int64_t>(k.core.length), static_cast<int64_t>(k.core.head_dim)}) {
      h = h * 1000003u ^ std::hash<int64_t>{}(x);
    }
    return h ^ (static_cast<size_t>(k.core.dropout) << 1) ^
           (static_cast<size_t>(k.core.backward) << 2);
  }
};

}  // namespace

ShardOps shard_plans(const SimModel& model, const SimLayout& l) {
  ShardOps out;
  for (int r = 0; r < l.sp; ++r) {
    const int twin = model.plan_twin(l.shard(), r);
    if (twin != r) {  // a lower rank's plan (plan_twin's test compares them)
      out.rank_plan.push_back(out.rank_plan[static_cast<size_t>(twin)]);
      continue;
    }
    out.rank_plan.push_back(static_cast<int>(out.plans.size()));
    out.plans.push_back(
        model.plan(l.shard(), r, l.micro_batch, l.seq_len, l.element_bytes, l.recompute));
  }
  return out;
}

ShardOps shard_ops(const SimModel& model, const ClusterSpec& cluster, const SimLayout& l,
                   const CostModel& cost) {
  ShardOps out = shard_plans(model, l);
  cost_shard_ops(out, model, cluster, l, cost);
  return out;
}

void cost_shard_ops(ShardOps& out, const SimModel& model, const ClusterSpec& cluster,
                    const SimLayout& l, const CostModel& cost) {
  const Costing c(model, cluster, l, cost);
  // The layers repeat their ops: an op with the same kind, pass, FLOPs,
  // bytes and shapes as one already costed gets that one's compute time (the
  // same function of those), so each distinct op is costed once per rank.
  std::unordered_map<OpCostKey, ShardOps::Op, OpCostKeyHash> costed;
  out.ops.clear();
  out.runs.clear();
  for (const OpPlan& plan : out.plans) {
    std::vector<ShardOps::Op>& ops = out.ops.emplace_back();
    std::vector<ShardOps::Run>& runs = out.runs.emplace_back();
    ops.reserve(plan.ops().size());
    costed.clear();
    // Where a rank waits for its neighbour's state (gradient): at the op
    // that first reads it, or (a blocking ring) where the receive is posted,
    // before its attention kernels (model/op_plan.h, RingReceive).
    const RingReceive waits_at = l.lasp_blocking ? RingReceive::Posts : RingReceive::Waits;
    for (const PlannedOp& op : plan.ops()) {
      const int64_t layer = op.layer;
      if (op.repeats >= 0) {  // the same op as an earlier one, in another layer
        ShardOps::Op o = ops[static_cast<size_t>(op.repeats)];
        o.layer = layer;
        if (runs.empty() || runs.back().layer != layer)
          runs.push_back({layer, ops.size(), ops.size()});
        ++runs.back().end;
        ops.push_back(o);
        continue;
      }
      const OpCostKey key{op.kind,       op.pass,          op.receive, op.flops,
                          op.bytes_read, op.bytes_written, op.matmul,  op.core};
      auto [it, fresh] = costed.try_emplace(key);
      ShardOps::Op& base = it->second;
      if (fresh) {
        base.cls = op.kind;
        // A layer's recomputation runs in its backward (Pass::Recompute).
        base.backward = op.pass == Pass::Backward || op.pass == Pass::Recompute;
        base.recompute = op.pass == Pass::Recompute;
        base.compute = c.op(op);
        const bool receives = l.sp > 1 && op.receive == waits_at;
        base.receives_forward = receives && !base.backward;
        base.receives_backward = receives && base.backward;
      }
      ShardOps::Op o = base;  // no traffic in it: the collectives below are this op's
      o.layer = layer;
      for (const PlannedCollective& pc : op.collectives) {
        const CollectiveKind kind = pc.kind;
        if (pc.group == CommGroup::Tp) {
          o.tp_seconds += c.collective(kind, sim_payload(kind, pc.bytes, l.tp), c.tp);
          o.tp_bytes += wire_bytes(kind, l.tp, pc.bytes);
        } else if (pc.group == CommGroup::Sp) {
          o.sp_bytes += wire_bytes(kind, l.sp, pc.bytes);
          if (l.sp == 1) continue;
          if (kind == CollectiveKind::SendRecv) {
            o.sp_send = true;
            o.sp_send_seconds += c.collective(kind, pc.bytes, c.sp);
          } else {
            o.sp_group = true;
            o.sp_group_seconds += c.collective(kind, sim_payload(kind, pc.bytes, l.sp), c.sp);
          }
        }
      }
      if (runs.empty() || runs.back().layer != layer) runs.push_back({layer, ops.size(), ops.size()});
      ++runs.back().end;
      ops.push_back(o);
    }
  }
}

MicroBatchCosts micro_batch_costs(const SimModel& model, const ClusterSpec& cluster, const SimLayout& l,
                                  const CostModel& cost, const ShardOps* shard, bool trace_ops) {
  const Costing c(model, cluster, l, cost);
  MicroBatchCosts out;
  ShardOps own;
  if (shard == nullptr) {
    own = shard_ops(model, cluster, l, cost);
    shard = &own;
  }
  LINPAR_CHECK(static_cast<int>(shard->rank_plan.size()) == l.sp,
               "shard ops of {} SP ranks for sp {}", shard->rank_plan.size(), l.sp);
  // Stages of the same structure (first or not, last or not, as many layers,
  // as many LRPE layers) cost the same: their ops differ only in the layer
  // index. The first of them is simulated; the others take its costs with
  // the layers renumbered (a deep pipeline has few distinct stages).
  std::map<std::tuple<bool, bool, int64_t, int64_t>, size_t> same_as;
  const int V = l.virtual_stages();
  for (int q = 0; q < V; ++q) {
    StageCost sc;
    sc.stage = model.stage(q, V);
    sc.parameters = model.stage_parameters(q, V, l.tp);
    sc.tied_embedding = model.tied_embedding_parameters(q, V, l.tp);
    int64_t lrpe_layers = 0;
    if (model.is_transnormer()) {
      for (int64_t layer = sc.stage.first_layer; layer < sc.stage.end_layer; ++layer) {
        lrpe_layers += model.transnormer().layer_uses_lrpe(layer) ? 1 : 0;
      }
    }
    const auto key = std::make_tuple(sc.stage.first(), sc.stage.last(), sc.stage.end_layer - sc.stage.first_layer,
                                     lrpe_layers);
    if (auto it = same_as.find(key); it != same_as.end() && !trace_ops) {
      StageCost copy = out.stages[it->second];  // every cost; this stage's own place and parameters
      const int64_t shift = sc.stage.first_layer - copy.stage.first_layer;
      copy.stage = sc.stage;
      copy.parameters = sc.parameters;
      copy.tied_embedding = sc.tied_embedding;
      for (auto& [layer, t] : copy.backward_by_layer) {
        if (layer >= 0) layer += shift;
      }
      out.stages.push_back(std::move(copy));
      continue;
    }
    same_as.emplace(key, out.stages.size());
    // Each distinct plan's ops on this stage, forward and backward; every SP
    // rank runs its plan's.
    const size_t K = shard->plans.size();
    std::vector<std::vector<RankOp>> fwd(K), bwd(K);
    std::vector<int64_t> tp_bytes(K, 0), sp_bytes(K, 0), flops(K, 0);
    for (size_t k = 0; k < K; ++k) {
      std::vector<RankOp>& f = fwd[k];
      std::vector<RankOp>& b = bwd[k];
      const std::vector<PlannedOp>& plan_ops = shard->plans[k].ops();
      f.reserve(plan_ops.size());
      b.reserve(plan_ops.size());
      const std::vector<ShardOps::Op>& costed = shard->ops[k];
      for (const ShardOps::Run& run : shard->runs[k]) {
        if (!on_stage(run.layer, sc.stage)) continue;
        for (size_t i = run.begin; i < run.end; ++i) {
          const ShardOps::Op& o = costed[i];
          const PlannedOp& op = plan_ops[i];
          tp_bytes[k] += o.tp_bytes;
          sp_bytes[k] += o.sp_bytes;
          // Model FLOPs: the work the step must do; recomputation repeats some.
          if (o.cls != OpClass::Memory && !o.recompute) flops[k] += op.flops;
          // A layer's recomputation is in its backward run, as the plan
          // has it (its collectives those the recomputing code issues).
          (o.backward ? b : f).push_back(RankOp{&op, o.compute + o.tp_seconds, o.layer, &o});
        }
      }
    }
    std::vector<const std::vector<RankOp>*> rank_fwd, rank_bwd;
    for (int r = 0; r < l.sp; ++r) {
      const size_t k = static_cast<size_t>(shard->rank_plan[static_cast<size_t>(r)]);
      rank_fwd.push_back(&fwd[k]);
      rank_bwd.push_back(&bwd[k]);
      sc.tp_bytes = std::max(sc.tp_bytes, tp_bytes[k]);
      sc.sp_bytes = std::max(sc.sp_bytes, sp_bytes[k]);
      sc.tp_bytes_all += tp_bytes[k];
      sc.sp_bytes_all += sp_bytes[k];
      sc.model_flops += flops[k];
    }
    sc.forward = simulate_sp_ranks(c, l, rank_fwd, K == 1, false, nullptr, trace_ops ? &sc.forward_ops : nullptr);
    sc.backward = simulate_sp_ranks(c, l, rank_bwd, K == 1, true, &sc.backward_by_layer,
                                    trace_ops ? &sc.backward_ops : nullptr);
    out.stages.push_back(std::move(sc));
  }
  const int64_t stream = l.tp_sp ? l.seq_len / l.sp / l.tp : l.seq_len / l.sp;
  out.boundary_bytes = l.micro_batch * stream * model.width() * l.element_bytes;
  out.send_seconds = c.collective(CollectiveKind::SendRecv, out.boundary_bytes, c.pp);
  return out;
}

namespace {
// A traced task keeps its name's pointer (sim/engine.h): the step tail's op
// names, a dozen, are kept for the process's life.
const char* task_name(const std::string& name) {
  static std::mutex mutex;
  static std::unordered_set<std::string> names;
  const std::lock_guard<std::mutex> lock(mutex);
  return names.insert(name).first->c_str();
}
}  // namespace

StepPrediction schedule_step(const SimModel& model, const ClusterSpec& cluster, const SimLayout& l,
                             const MicroBatchCosts& costs, const CostModel& cost, bool trace) {
  const Costing c(model, cluster, l, cost);
  const int64_t m = l.micro_batches();
  const bool co2 = l.co2_tau > 0;
  // The group that averages gradients every step: dp·sp ranks, or with CO2
  // only the SP ranks of a replica (the replicas meet in the outer loop).
  const GroupPlacement grad = co2 ? c.sp : c.grad;
  StepPrediction out;
  // The engine (sim/engine.h): one rank per stage. A task is its id; -1: not
  // laid out yet.
  Schedule s(l.pp, c.interference(), trace);
  const size_t P = static_cast<size_t>(l.pp), M = static_cast<size_t>(m);
  // ZeRO (parallel/zero.h) reduces and gathers group by group: each virtual
  // stage's groups (the embedding, each layer, the head), their shards' RS
  // payload in the gradients' bytes and AG payload in the gathered weights'
  // (ZeRO-3: the compute copies, or the masters without them).
  const int V = l.virtual_stages();
  const int64_t zero_ranks = grad.ranks;
  const int64_t master_bytes = l.element_bytes == 8 ? 8 : 4;
  const int64_t weight_bytes = l.element_bytes == 2 ? 2 : master_bytes;
  std::vector<std::vector<int64_t>> zero_groups(l.zero > 0 ? static_cast<size_t>(V) : 0);
  for (size_t q = 0; q < zero_groups.size(); ++q) {
    zero_groups[q] = model.stage_parameter_groups(static_cast<int>(q), V, l.tp);
    for (int64_t& g : zero_groups[q]) g = (g + zero_ranks - 1) / zero_ranks;  // the shard
  }
  // The group of backward_by_layer's entry `layer` on virtual stage q (-1:
  // the embedding, -2: the head, whose groups follow the layers).
  auto group_shard = [&](size_t q, int64_t layer) -> int64_t {
    const std::vector<int64_t>& g = zero_groups[q];
    const PipelineStage& st = costs.stages[q].stage;
    const size_t before = st.first() ? 1 : 0;
    if (layer == -1) return st.first() ? g.front() : 0;
    if (layer >= 0) return g[before + static_cast<size_t>(layer - st.first_layer)];
    int64_t head = 0;
    for (size_t i = before + static_cast<size_t>(st.end_layer - st.first_layer); i < g.size(); ++i)
      head += g[i];
    return head;
  };
  auto reduce_scatter_seconds = [&](int64_t shard) {
    return c.collective(
        CollectiveKind::ReduceScatter,
        sim_payload(CollectiveKind::ReduceScatter, shard * l.grad_reduce_bytes, grad.ranks), grad);
  };
  auto all_gather_seconds = [&](int64_t shard) {
    return c.collective(CollectiveKind::AllGather,
                        sim_payload(CollectiveKind::AllGather, shard * weight_bytes, grad.ranks),
                        grad);
  };
  // Per virtual stage, the seconds of a pass's collectives: forward's first
  // gather and the rest (the tied embedding's again for the head),
  // backward's first gather (its first group: the head's, or the last
  // layer's) and the rest, and every reduce-scatter. The micro-batches
  // before the last are laid out with these sums (the same comm-stream
  // time; it hides behind the next micro-batch's work), the last group by
  // group.
  struct PassCollectives {
    double forward_first = 0, forward_rest = 0, backward_first = 0, backward_rest = 0, reduce = 0;
  };
  std::vector<PassCollectives> zero_seconds(zero_groups.size());
  for (size_t q = 0; q < zero_groups.size(); ++q) {
    PassCollectives& z = zero_seconds[q];
    const PipelineStage& st = costs.stages[q].stage;
    const std::vector<int64_t>& g = zero_groups[q];
    for (size_t k = 0; k < g.size(); ++k) {
      const double gather = all_gather_seconds(g[k]);
      (k == 0 ? z.forward_first : z.forward_rest) += gather;
      (k + 1 == g.size() ? z.backward_first : z.backward_rest) += gather;
      z.reduce += reduce_scatter_seconds(g[k]);
    }
    if (st.first() && st.last() && model.tied_embeddings())
      z.forward_rest += all_gather_seconds(g[0]);
  }
  // Each micro-batch's forward, backward and their sends on every virtual
  // stage, the last one's backward layer by layer with its buckets (ZeRO-3
  // with its gathers; ZeRO-2 and -3's earlier ones a few tasks each), and
  // the tail's few tasks per stage.
  size_t tasks = 4 * M * costs.stages.size() + 8 * P;
  for (const StageCost& sc : costs.stages)
    tasks += 4 * sc.backward_by_layer.size() + (l.zero >= 2 ? 6 * M : 0);
  s.reserve(tasks);
  // Each stage's gradient buckets: its comm stream's tasks before the
  // optimizer.
  std::vector<std::vector<int>> bucket_tasks(P);
  const double elementwise_rate = cluster.gpu.hbm_gbps * 1e9 * cost.efficiency.elementwise;
  // Inlined at its dozen call sites, as Schedule::add is: out of line it
  // cost a fifth of the layout search's scheduling time (bench/search_bench).
  auto place = [&s](const char* name, int p, Stream stream, double seconds,
                    std::span<const int> after = {}) __attribute__((always_inline)) {
    return s.add(name, Resource{p, stream}, seconds, after);
  };

  // Forward/backward tasks in each stage's schedule order. A forward needs the
  // previous (virtual) stage's send of that micro-batch; a backward the next
  // one's. Virtual stage q = chunk · pp + p ([q · M + micro-batch] below);
  // without interleaving q = p.
  const int64_t actions = 2 * m * l.pp_chunks;  // per stage
  const size_t Q = static_cast<size_t>(V);
  std::vector<int> fwd_send(Q * M, -1), bwd_send(Q * M, -1), fwd_task(Q * M, -1);
  // Micro-batch 0's first backward task per virtual stage (the op trace's).
  std::vector<int> first_backward(Q, -1);
  std::vector<int64_t> next(P, 0);  // each stage's next action
  std::vector<int> stage_end(P, -1);  // each stage's last backward
  bool progress = true;
  while (progress) {
    progress = false;
    for (int p = 0; p < l.pp; ++p) {
      const size_t sp = static_cast<size_t>(p);
      while (next[sp] < actions) {
        const PipelineAction a = l.pp_chunks > 1 ? interleaved_pipeline_action(p, l.pp, l.pp_chunks, m, next[sp])
                                                 : pipeline_action(l.schedule, p, l.pp, m, next[sp]);
        const int q = a.chunk * l.pp + p;
        const size_t sq = static_cast<size_t>(q);
        const StageCost& sc = costs.stages[sq];
        const size_t i = static_cast<size_t>(a.micro_batch);
        int deps[3];
        size_t n = 0;
        if (!a.backward) {
          if (q > 0) {
            if (fwd_send[(sq - 1) * M + i] < 0) break;
            deps[n++] = fwd_send[(sq - 1) * M + i];
          }
          int f = -1;
          if (l.zero == 3 && grad.ranks > 1) {
            // ZeRO-3: each group's weights gathered before its forward, the
            // next prefetched while it runs: the first gather, the rest on
            // the comm stream after it, the compute after the first, and
            // the pass done once both are (a marker on the compute stream).
            const PassCollectives& z = zero_seconds[sq];
            const int first =
                place("all-gather weights", p, Stream::Comm, z.forward_first, {deps, n});
            const int last_gather =
                place("all-gather weights", p, Stream::Comm, z.forward_rest, {});
            deps[n++] = first;
            const int compute = place("forward", p, Stream::Compute, sc.forward, {deps, n});
            const int both[2] = {compute, last_gather};
            f = place("forward", p, Stream::Compute, 0.0, {both, 2});
          } else {
            f = place("forward", p, Stream::Compute, sc.forward, {deps, n});
          }
          fwd_task[sq * M + i] = f;
          if (q < V - 1)
            fwd_send[sq * M + i] =
                place("send activations", p, Stream::P2P, costs.send_seconds, {&f, 1});
        } else {
          if (q < V - 1) {
            if (bwd_send[(sq + 1) * M + i] < 0) break;
            deps[n++] = bwd_send[(sq + 1) * M + i];
          }
          deps[n++] = fwd_task[sq * M + i];
          // Autograd's in-place add of this micro-batch's weight gradients
          // (SimLayout::grad_accumulate_add), after the first.
          const double accumulate = l.grad_accumulate_add && i > 0 ? 3.0 * static_cast<double>(l.grad_reduce_bytes) *
                                                                       static_cast<double>(sc.parameters) / elementwise_rate
                                                                 : 0.0;
          int last = -1;
          // (ZeRO-2 and -3 reduce during backward whatever --grad-reduce says:
          // they keep no whole gradient to reduce after it.)
          const bool last_micro_batch = static_cast<int64_t>(i) + 1 == m;
          const bool zero_layers = l.zero > 0 && grad.ranks > 1 && last_micro_batch &&
                                   (l.zero >= 2 || l.grad_reduce_overlap);
          if (l.zero >= 2 && grad.ranks > 1 && !last_micro_batch) {
            // An earlier micro-batch's ZeRO-2/3 collectives in sums (above):
            // ZeRO-3's first gather before the backward, the rest beside it,
            // then every reduce-scatter.
            const PassCollectives& z = zero_seconds[sq];
            if (l.zero == 3) {
              const int gathered =
                  place("all-gather weights", p, Stream::Comm, z.backward_first, {deps, n});
              deps[n++] = gathered;
            }
            last = place("backward", p, Stream::Compute, sc.backward + accumulate, {deps, n});
            if (i == 0) first_backward[sq] = last;
            if (l.zero == 3) {
              const int rest = place("all-gather weights", p, Stream::Comm, z.backward_rest, {});
              const int both[2] = {last, rest};
              last = place("backward", p, Stream::Compute, 0.0, {both, 2});
            }
            bucket_tasks[sp].push_back(
                place("reduce-scatter gradients", p, Stream::Comm, z.reduce, {&last, 1}));
          } else if (zero_layers) {
            // ZeRO, layer by layer: each group's reduce-scatter once its
            // backward is done (stage 1 on the last micro-batch, 2 and 3 on
            // every one); ZeRO-3 gathers each group's weights first, the
            // next one's issued before this one's reduce-scatter.
            const auto& layers = sc.backward_by_layer;
            const double accumulate_per_layer =
                accumulate / static_cast<double>(std::max<size_t>(1, layers.size()));
            int gathered = -1;
            if (l.zero == 3 && !layers.empty()) {
              const int64_t shard = group_shard(sq, layers.front().first);
              if (shard > 0)
                gathered = place("all-gather weights", p, Stream::Comm, all_gather_seconds(shard),
                                 {deps, n});
            }
            for (size_t k = 0; k < layers.size(); ++k) {
              if (gathered >= 0) deps[n++] = gathered;
              last = place("backward", p, Stream::Compute, layers[k].second + accumulate_per_layer,
                           {deps, n});
              if (i == 0 && first_backward[sq] < 0) first_backward[sq] = last;
              n = 0;
              gathered = -1;
              if (l.zero == 3 && k + 1 < layers.size()) {
                const int64_t shard = group_shard(sq, layers[k + 1].first);
                if (shard > 0)
                  gathered =
                      place("all-gather weights", p, Stream::Comm, all_gather_seconds(shard), {});
              }
              const int64_t shard = group_shard(sq, layers[k].first);
              if (shard > 0) {
                bucket_tasks[sp].push_back(place("reduce-scatter gradients", p, Stream::Comm,
                                                 reduce_scatter_seconds(shard), {&last, 1}));
              }
            }
          } else if (static_cast<int64_t>(i) + 1 == m && grad.ranks > 1 && !l.zero &&
                     l.grad_reduce_overlap) {
            // The last micro-batch (of each chunk): layer by layer, each
            // layer's gradients reduced as soon as they are complete (DDP
            // buckets); the chunk's parameters are spread evenly over its
            // layers.
            const int64_t layers = std::max<int64_t>(1, sc.stage.end_layer - sc.stage.first_layer);
            const int64_t bytes = sc.parameters / layers * l.grad_reduce_bytes;
            const double bucket_seconds = c.collective(CollectiveKind::AllReduce, bytes, grad);
            const double accumulate_per_layer = accumulate / static_cast<double>(layers);
            for (const auto& [layer, t] : sc.backward_by_layer) {
              last = place("backward", p, Stream::Compute,
                           t + (layer < 0 ? 0.0 : accumulate_per_layer), {deps, n});
              if (i == 0 && first_backward[sq] < 0) first_backward[sq] = last;
              n = 0;
              if (layer < 0) continue;
              bucket_tasks[sp].push_back(
                  place("all-reduce gradients", p, Stream::Comm, bucket_seconds, {&last, 1}));
            }
          } else {
            last = place("backward", p, Stream::Compute, sc.backward + accumulate, {deps, n});
            if (i == 0) first_backward[sq] = last;
          }
          if (q > 0)
            bwd_send[sq * M + i] =
                place("send gradients", p, Stream::P2P, costs.send_seconds, {&last, 1});
          stage_end[sp] = last;  // 1F1B and GPipe end each stage on a backward
        }
        ++next[sp];
        progress = true;
      }
    }
  }
  for (size_t p = 0; p < P; ++p) {
    LINPAR_CHECK(next[p] == actions, "pipeline schedule of stage {} could not be placed", p);
  }

  // The step's tail as the plan has it (parallel/step_plan.h: the trainer's
  // update code run on meta parameters), stage by stage below.
  int64_t comm_bytes = 0;
  std::vector<double> outer(P, 0.0);
  const double hbm = cluster.gpu.hbm_gbps * 1e9 * cost.efficiency.memory;
  auto memory_seconds = [&](const PlannedOp& op) {
    return static_cast<double>(op.bytes_read + op.bytes_written) / hbm;
  };
  auto placement = [&](CommGroup g) -> const GroupPlacement& {
    switch (g) {
      case CommGroup::Tp:
        return c.tp;
      case CommGroup::Pp:
        return c.pp;
      case CommGroup::Sp:
        return c.sp;
      case CommGroup::Dp:
        return c.dp;
      case CommGroup::Embedding:
        return c.embedding;
      case CommGroup::DpSp:
        return c.grad;
    }
    return c.grad;
  };
  // One collective's time (the plan counts what the communicator counts;
  // the alpha-beta model takes the whole buffer) and wire bytes.
  auto collective_time = [&](const PlannedCollective& pc) {
    const GroupPlacement& g = placement(pc.group);
    return c.collective(pc.kind, sim_payload(pc.kind, pc.bytes, g.ranks), g);
  };
  auto wire = [&](const PlannedOp& op) {
    int64_t bytes = 0;
    for (const PlannedCollective& pc : op.collectives) {
      const GroupPlacement& g = placement(pc.group);
      if (g.ranks > 1) bytes += wire_bytes(pc.kind, g.ranks, pc.bytes);
    }
    return bytes;
  };
  for (size_t p = 0; p < P; ++p) {
    // The stage's chunks together (one without interleaving): its
    // parameters, its traffic per micro-batch, and its sends (a chunk sends
    // its activations on unless it is the last virtual stage, its input's
    // gradient back unless it is the first).
    int64_t params = 0, tied = 0, tp_sp_bytes = 0, tp_sp_bytes_all = 0, sends = 0;
    for (int chunk = 0; chunk < l.pp_chunks; ++chunk) {
      const size_t q = static_cast<size_t>(chunk) * P + p;
      const StageCost& sc = costs.stages[q];
      params += sc.parameters;
      tied += sc.tied_embedding;
      tp_sp_bytes += sc.tp_bytes + sc.sp_bytes;
      tp_sp_bytes_all += sc.tp_bytes_all + sc.sp_bytes_all;
      sends += (q + 1 < Q) + (q > 0);
    }
    const int stage = static_cast<int>(p);
    StepTailShape shape;
    shape.parameters = params;
    if (l.zero > 0) {
      for (int chunk = 0; chunk < l.pp_chunks; ++chunk) {
        for (int64_t g : model.stage_parameter_groups(chunk * l.pp + stage, V, l.tp))
          shape.groups.push_back(g);
      }
    }
    // (ZeRO-3 gathers the embedding tied to a head on this stage twice.)
    shape.embedding_at_both_ends =
        l.zero > 0 && l.pp == 1 && l.pp_chunks == 1 && model.tied_embeddings();
    shape.tied_embedding = tied;
    shape.last_stage = stage + 1 == l.pp;
    shape.grad_reduce_bytes = l.grad_reduce_bytes;
    shape.element_bytes = l.element_bytes;
    const std::shared_ptr<const StepTail> tail = plan_step_tail(l, shape);
    // What every SP rank of the stage sends besides its TP and SP traffic:
    // the pipeline's activations and gradients, and the tail's collectives.
    int64_t shared = 0;
    if (l.pp > 1) shared += m * costs.boundary_bytes * sends;
    // The tail's ops in order: the reduction DDP overlaps with the last
    // backward (its buckets are laid out there; all at once after it with
    // --grad-reduce after-backward), then the update's ops one after another
    // (an op's bytes on the compute stream, its collectives on the comm
    // stream after them), the first once the buckets are done; CO2's outer
    // all-reduce, once per τ steps.
    int previous = -1;
    for (const PlannedOp& op : tail->ops) {
      const char* name = trace ? task_name(op.name) : op.name.c_str();
      double collectives = 0;
      for (const PlannedCollective& pc : op.collectives) collectives += collective_time(pc);
      if (op.pass == Pass::Outer) {
        outer[p] += collectives;
        shared += wire(op) / l.co2_tau;
        continue;
      }
      shared += wire(op);
      if (op.pass == Pass::Reduce) {
        // (ZeRO-2 and -3's collectives, the micro-batches' own, are laid
        // out with them above; the op holds their bytes.)
        if (!l.grad_reduce_overlap && l.zero < 2 && !op.collectives.empty()) {
          bucket_tasks[p].push_back(
              place(name, stage, Stream::Comm, collectives, {&stage_end[p], 1}));
        }
        // Its own pass over the shards (ZeRO's average on the CPU) once
        // the reductions are done.
        if (op.bytes_read + op.bytes_written > 0)
          previous = place(name, stage, Stream::Compute, memory_seconds(op),
                           std::span<const int>(bucket_tasks[p]));
        continue;
      }
      std::span<const int> after = previous >= 0 ? std::span<const int>(&previous, 1)
                                                 : std::span<const int>(bucket_tasks[p]);
      if (op.bytes_read + op.bytes_written > 0 || op.collectives.empty()) {
        previous = place(name, stage, Stream::Compute, memory_seconds(op), after);
        after = std::span<const int>(&previous, 1);
      }
      if (!op.collectives.empty()) previous = place(name, stage, Stream::Comm, collectives, after);
    }
    comm_bytes = std::max(comm_bytes, m * tp_sp_bytes + shared);
    out.comm_bytes_per_step +=
        static_cast<int64_t>(l.dp) * l.tp * (m * tp_sp_bytes_all + static_cast<int64_t>(l.sp) * shared);
  }

  const double inner = s.makespan();
  // The SP ranks' op-by-op tasks of each stage's (and chunk's) first
  // micro-batch where the step runs its forward and backward (the trace's
  // schedule has run), one trace process per stage, chunk and SP rank
  // (micro_batch_costs' trace_ops).
  if (trace) {
    for (size_t q = 0; q < Q; ++q) {
      const StageCost& sc = costs.stages[q];
      if (sc.forward_ops.empty()) continue;
      const int first_track = static_cast<int>(out.op_tracks.size());
      for (int r = 0; r < l.sp; ++r) {
        out.op_tracks.push_back(fmt::format("stage {}{} SP rank {}: micro-batch 0, op by op", q % P,
                                            l.pp_chunks > 1 ? fmt::format(" chunk {}", q / P) : "", r));
      }
      const double forward_at = s.start(fwd_task[q * M]), backward_at = s.start(first_backward[q]);
      for (auto [ops, at] : {std::pair{&sc.forward_ops, forward_at}, {&sc.backward_ops, backward_at}}) {
        for (TracedTask t : *ops) {  // a copy, moved into place
          t.process += first_track;
          t.start += at;
          t.finish += at;
          out.op_tasks.push_back(std::move(t));
        }
      }
    }
  }

  // CO2: a round of τ inner steps takes the longer of their time and the
  // outer all-reduce started at its beginning (it has the network to itself
  // but for the SP ranks' per-step traffic); per step, a τ-th of that.
  double outer_max = 0;
  for (double t : outer) outer_max = std::max(outer_max, t);
  out.step_seconds = co2 ? std::max(inner * static_cast<double>(l.co2_tau), outer_max) /
                               static_cast<double>(l.co2_tau)
                         : inner;
  int64_t flops = 0;
  for (const StageCost& sc : costs.stages) flops += m * sc.model_flops;
  for (int p = 0; p < l.pp; ++p) {
    const double busy = s.busy(p, Stream::Compute);
    if (busy > out.compute_seconds) {
      out.compute_seconds = busy;
      out.comm_seconds = s.busy(p, Stream::Comm) + s.busy(p, Stream::P2P);
      out.bubble_seconds = inner - busy;
    }
  }
  // Every stage's FLOPs (summed over its SP ranks), on each of its dp × tp
  // ranks' shares: per GPU, the total over the pp·sp ranks of one replica's shard.
  out.model_flops_per_gpu = flops / (static_cast<int64_t>(l.pp) * l.sp);
  out.mfu = static_cast<double>(out.model_flops_per_gpu) / out.step_seconds / (cluster.gpu.bf16_tflops * 1e12);
  out.tokens_per_gpu_per_s = static_cast<double>(l.global_batch * l.seq_len) / out.step_seconds / l.world();
  out.comm_bytes_per_gpu = comm_bytes;
  if (trace) out.schedule = std::move(s);
  return out;
}

MemoryBreakdown layout_memory(const SimModel& model, const SimLayout& l) {
  if (model.is_transnormer()) {
    MemoryLayout ml;
    static_cast<Layout&>(ml) = l;
    ml.element_bytes = l.element_bytes;
    return busiest_stage_memory(model.transnormer(), ml);
  }
  // GPT/Llama: the same optimizer-side terms as the TransNormer's (f32 master,
  // bf16 copy, f32 gradients, AdamW m and v, sharded by ZeRO over dp·sp),
  // Korthikanti's per-layer activations for the micro-batches in flight and
  // the last stage's f32 logits of one micro-batch for the loss.
  const SoftmaxTransformerConfig& cfg = model.softmax();
  const int64_t e = l.element_bytes, m = l.micro_batches();
  MemoryBreakdown best;
  const int V = l.virtual_stages();
  const StepShape shape{l.micro_batch, l.seq_len, e};
  // One micro-batch's activations of virtual stage q (a stage's chunk).
  auto activation_bytes = [&](int q) {
    const PipelineStage st = model.stage(q, V);
    int64_t bytes =
        (st.end_layer - st.first_layer) * layer_activation_bytes(cfg, l.tp, l.tp_sp, l.sp, shape, l.recompute);
    if (st.last()) bytes += l.micro_batch * (l.seq_len / l.sp) * cfg.padded_vocab_size(l.tp) / l.tp * 4;
    return bytes;
  };
  for (int p = 0; p < l.pp; ++p) {
    std::vector<int64_t> groups;
    for (int c = 0; c < l.pp_chunks; ++c) {
      for (int64_t g : model.stage_parameter_groups(c * l.pp + p, V, l.tp)) groups.push_back(g);
    }
    MemoryBreakdown mb;
    const int tied = cfg.tie_embeddings && V == 1 ? 0 : -1;
    fill_optimizer_side(mb, groups, l.zero, static_cast<int64_t>(l.dp) * l.sp, 4, e, tied);
    std::vector<int64_t> chunk_bytes;
    for (int c = 0; c < l.pp_chunks; ++c) chunk_bytes.push_back(activation_bytes(c * l.pp + p));
    fill_activations(mb, l.schedule, p, l.pp, chunk_bytes, m);
    mb.total = mb.parameters + mb.gradients + mb.optimizer_state + mb.activations +
               mb.communication_buffers;
    if (mb.total > best.total) best = mb;
  }
  return best;
}

StepPrediction simulate_step(const SimModel& model, const ClusterSpec& cluster, const SimLayout& l,
                             const CostModel& cost, bool trace_ops) {
  validate_layout(model, cluster, l);
  StepPrediction out =
      schedule_step(model, cluster, l, micro_batch_costs(model, cluster, l, cost, nullptr, trace_ops), cost);
  out.memory = layout_memory(model, l);
  out.fits = fits(out.memory, cluster.gpu);
  out.memory_message = memory_overflow_message(out.memory, cluster.gpu);
  return out;
}

}  // namespace linpar::sim
