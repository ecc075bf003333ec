#include "sim/step.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/transnormer.h"
#include "sim/collectives.h"

namespace linpar::sim {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string t(suffix);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// The layer an op belongs to, or -1 (embedding: -1 with first_stage ops,
// the head and loss: -2).
int64_t op_layer(const std::string& name) {
  if (name.rfind("layers.", 0) == 0) return std::stoll(name.substr(7));
  if (name.rfind("embedding.", 0) == 0) return -1;
  return -2;  // final_norm, lm_head, cross_entropy
}

bool on_stage(int64_t layer, const PipelineStage& st) {
  if (layer == -1) return st.first();
  if (layer == -2) return st.last();
  return layer >= st.first_layer && layer < st.end_layer;
}

CollectiveKind kind_of(const std::string& name) {
  for (int k = 0; k < kCollectiveKinds; ++k) {
    if (name == collective_name(static_cast<CollectiveKind>(k))) return static_cast<CollectiveKind>(k);
  }
  LINPAR_CHECK(false, "unknown collective {}", name);
  return CollectiveKind::AllReduce;
}

// The sim's payload S from the plan's (communicator's) payload: an
// all-gather's output and a reduce-scatter's input are n times theirs.
int64_t sim_payload(CollectiveKind kind, int64_t bytes, int ranks) {
  if (kind == CollectiveKind::AllGather || kind == CollectiveKind::ReduceScatter) return bytes * ranks;
  return bytes;
}

}  // namespace

int64_t stage_parameters(const ModelConfig& m, int stage, int stages, int tp) {
  const PipelineStage st = pipeline_stage(m, stage, stages);
  const int64_t D = m.width, F = m.glu_dim, V = m.vocab_size;
  int64_t n = 0;
  for (int64_t l = st.first_layer; l < st.end_layer; ++l) {
    n += (4 * D * D + D * D + 3 * D * F) / tp + (m.layer_uses_lrpe(l) ? D / tp : 0);
  }
  if (st.first()) n += V * D / tp;  // the embedding
  // The LM head: its own matrix, or the tied embedding (a copy on the last
  // stage when the pipeline separates them).
  if (st.last() && (!m.tie_embeddings || !st.first())) n += V * D / tp;
  return n;
}

StepPrediction simulate_step(const ModelConfig& model, const ClusterSpec& cluster,
                             const SimLayout& l, const Efficiency& eff) {
  validate(cluster);
  const int world = l.dp * l.tp * l.pp;
  if (world != cluster.gpus()) {
    user_error("layout dp {} × tp {} × pp {} = {} GPUs, the cluster has {}", l.dp, l.tp, l.pp, world,
               cluster.gpus());
  }
  validate_tensor_parallel(model, l.tp);
  if (l.pp > 1) pipeline_stage(model, l.pp - 1, l.pp);
  if (l.global_batch % (static_cast<int64_t>(l.dp) * l.micro_batch) != 0) {
    user_error("--global-batch {} must be a multiple of dp {} × micro-batch {}", l.global_batch, l.dp,
               l.micro_batch);
  }
  if (l.tp_sp && l.seq_len % l.tp != 0) user_error("--tp-sp: seq-len {} not divisible by tp {}", l.seq_len, l.tp);
  const int64_t m = l.global_batch / (l.dp * l.micro_batch);
  const int64_t e = l.element_bytes;

  const GroupPlacement tp_group = place_group(l.tp, 1, cluster.gpus_per_node);
  const GroupPlacement pp_group = place_group(l.pp, l.tp * l.dp, cluster.gpus_per_node);
  const GroupPlacement dp_group = place_group(l.dp, l.tp, cluster.gpus_per_node);

  const OpPlan plan = plan_model(model, TensorParallel{nullptr, 0, l.tp, l.tp_sp}, SequenceParallel{},
                                 StepShape{l.micro_batch, l.seq_len, e});
  StepPrediction out;
  out.schedule = Schedule(l.pp);
  Schedule& s = out.schedule;

  // Per stage: forward and backward time of one micro-batch (ops and their
  // blocking TP collectives), and per layer the backward time (for buckets).
  struct StageCost {
    PipelineStage stage;
    double forward = 0, backward = 0;
    std::vector<std::pair<int64_t, double>> backward_by_layer;  // in execution order
    int64_t tp_bytes = 0;
    int64_t model_flops = 0;
    int64_t parameters = 0;  // this rank's (stage_parameters)
  };
  std::vector<StageCost> stages(static_cast<size_t>(l.pp));
  for (int p = 0; p < l.pp; ++p) {
    stages[static_cast<size_t>(p)].stage = pipeline_stage(model, p, l.pp);
    stages[static_cast<size_t>(p)].parameters = stage_parameters(model, p, l.pp, l.tp);
  }
  for (const PlannedOp& op : plan.ops()) {
    const int64_t layer = op_layer(op.name);
    for (StageCost& sc : stages) {
      if (!on_stage(layer, sc.stage)) continue;
      double t = op_seconds(op, cluster.gpu, eff);
      for (const PlannedCollective& c : op.collectives) {
        const CollectiveKind kind = kind_of(c.kind);
        t += collective_seconds(kind, sim_payload(kind, c.bytes, l.tp), tp_group, cluster);
        sc.tp_bytes += wire_bytes(kind, l.tp, c.bytes);
      }
      if (classify_op(op.name) != OpClass::Memory) sc.model_flops += op.flops;
      if (ends_with(op.name, ".backward")) {
        sc.backward += t;
        if (sc.backward_by_layer.empty() || sc.backward_by_layer.back().first != layer) {
          sc.backward_by_layer.push_back({layer, 0.0});
        }
        sc.backward_by_layer.back().second += t;
      } else {
        sc.forward += t;
      }
    }
  }

  // Activations between stages: [B, N/tp (tp-sp) or N, D].
  const int64_t stream = l.tp_sp ? l.seq_len / l.tp : l.seq_len;
  const int64_t boundary_bytes = l.micro_batch * stream * model.width * e;
  const double send_s = collective_seconds(CollectiveKind::SendRecv, boundary_bytes, pp_group, cluster);

  // Forward/backward tasks in each stage's schedule order. A forward needs the
  // previous stage's send of that micro-batch; a backward the next stage's.
  std::vector<std::vector<int>> fwd_send(static_cast<size_t>(l.pp), std::vector<int>(static_cast<size_t>(m), -1));
  std::vector<std::vector<int>> bwd_send = fwd_send;
  std::vector<std::vector<int>> fwd_task = fwd_send;
  std::vector<std::vector<PipelineAction>> actions(static_cast<size_t>(l.pp));
  std::vector<size_t> next(static_cast<size_t>(l.pp), 0);
  for (int p = 0; p < l.pp; ++p) actions[static_cast<size_t>(p)] = pipeline_actions(l.schedule, p, l.pp, m);
  std::vector<std::vector<int>> bucket_tasks(static_cast<size_t>(l.pp));
  // Add tasks stage by stage in rounds until every action is placed; an
  // action waits until the task it depends on exists (added in an earlier round).
  bool progress = true;
  while (progress) {
    progress = false;
    for (int p = 0; p < l.pp; ++p) {
      const size_t sp = static_cast<size_t>(p);
      while (next[sp] < actions[sp].size()) {
        const PipelineAction a = actions[sp][next[sp]];
        const size_t i = static_cast<size_t>(a.micro_batch);
        const StageCost& sc = stages[sp];
        std::vector<int> after;
        if (!a.backward) {
          if (p > 0) {
            if (fwd_send[sp - 1][i] < 0) break;
            after.push_back(fwd_send[sp - 1][i]);
          }
          const int f = s.add({"forward " + std::to_string(i), {{p, Stream::Compute}}, sc.forward, after});
          fwd_task[sp][i] = f;
          if (p < l.pp - 1) fwd_send[sp][i] = s.add({"send activations", {{p, Stream::Comm}}, send_s, {f}});
        } else {
          if (p < l.pp - 1) {
            if (bwd_send[sp + 1][i] < 0) break;
            after.push_back(bwd_send[sp + 1][i]);
          }
          after.push_back(fwd_task[sp][i]);
          int last = -1;
          if (static_cast<int64_t>(i) + 1 == m && l.dp > 1) {
            // The last micro-batch: layer by layer, each layer's gradients
            // reduced as soon as they are complete (DDP buckets); the
            // stage's parameters are spread evenly over its layers.
            const int64_t per_layer = sc.parameters / std::max<int64_t>(1, sc.stage.end_layer - sc.stage.first_layer);
            for (const auto& [layer, t] : sc.backward_by_layer) {
              last = s.add({"backward " + std::to_string(i), {{p, Stream::Compute}}, t, after});
              after = {};
              const int64_t params = layer >= 0 ? per_layer : 0;
              if (params == 0) continue;
              const CollectiveKind kind = l.zero ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce;
              const int64_t bytes = params * 4;  // f32 gradients
              const double t_ar = collective_seconds(kind, bytes, dp_group, cluster);
              bucket_tasks[sp].push_back(s.add({l.zero ? "reduce-scatter gradients" : "all-reduce gradients",
                                                {{p, Stream::Comm}}, t_ar, {last}}));
            }
          } else {
            last = s.add({"backward " + std::to_string(i), {{p, Stream::Compute}}, sc.backward, after});
          }
          if (p > 0) bwd_send[sp][i] = s.add({"send gradients", {{p, Stream::Comm}}, send_s, {last}});
        }
        ++next[sp];
        progress = true;
      }
    }
  }
  for (int p = 0; p < l.pp; ++p) {
    LINPAR_CHECK(next[static_cast<size_t>(p)] == actions[static_cast<size_t>(p)].size(),
                 "pipeline schedule of stage {} could not be placed", p);
  }

  // Optimizer: f32 AdamW over this rank's parameters (1/dp of them with
  // ZeRO-1), about 30 bytes per parameter (reads value, grad, m, v; writes
  // value, m, v and the bf16 copy); then ZeRO-1's all-gather of the values.
  int64_t comm_bytes = 0;
  for (int p = 0; p < l.pp; ++p) {
    const size_t sp = static_cast<size_t>(p);
    const int64_t params = stages[sp].parameters;
    const int64_t updated = l.zero ? params / l.dp : params;
    const double t_opt = 30.0 * static_cast<double>(updated) / (cluster.gpu.hbm_gbps * 1e9 * eff.memory);
    const int opt = s.add({"optimizer", {{p, Stream::Compute}}, t_opt, bucket_tasks[sp]});
    if (l.zero && l.dp > 1) {
      s.add({"all-gather values", {{p, Stream::Comm}}, collective_seconds(CollectiveKind::AllGather, params * 4, dp_group, cluster), {opt}});
    }
    int64_t bytes = m * stages[sp].tp_bytes;
    if (l.pp > 1) bytes += m * boundary_bytes * ((p < l.pp - 1) + (p > 0));
    if (l.dp > 1) {
      bytes += l.zero ? 2 * wire_bytes(CollectiveKind::ReduceScatter, l.dp, params * 4 / l.dp)
                      : wire_bytes(CollectiveKind::AllReduce, l.dp, params * 4);
    }
    comm_bytes = std::max(comm_bytes, bytes);
  }

  out.step_seconds = s.run();
  int64_t flops = 0;
  for (int p = 0; p < l.pp; ++p) {
    const size_t sp = static_cast<size_t>(p);
    flops += m * stages[sp].model_flops;
    const double busy = s.busy(p, Stream::Compute);
    if (busy > out.compute_seconds) {
      out.compute_seconds = busy;
      out.bubble_seconds = out.step_seconds - busy;
    }
  }
  // Every stage's FLOPs, on each of its dp × tp ranks' shares.
  out.model_flops_per_gpu = flops / l.pp;
  out.mfu = static_cast<double>(out.model_flops_per_gpu) / out.step_seconds / (cluster.gpu.bf16_tflops * 1e12);
  out.tokens_per_gpu_per_s = static_cast<double>(l.global_batch * l.seq_len) / out.step_seconds / world;
  out.comm_bytes_per_gpu = comm_bytes;
  return out;
}

}  // namespace linpar::sim
