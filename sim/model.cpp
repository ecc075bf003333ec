#include "sim/model.h"

#include <memory>

#include "core/communicator.h"
#include "core/error.h"
#include "lasp/factory.h"
#include "model/plan_model.h"
#include "model/tensor_parallel.h"
#include "sim/step.h"

namespace linpar::sim {

SimModel::SimModel(ModelConfig transnormer) : transnormer_(std::move(transnormer)) {
  transnormer_->validate();
}

SimModel::SimModel(SoftmaxTransformerConfig softmax) : softmax_(std::move(softmax)) {
  softmax_->validate();
}

SimModel SimModel::from_preset(const std::string& name) {
  if (std::optional<SoftmaxTransformerConfig> s = find_softmax_preset(name)) return SimModel(*s);
  for (const PresetInfo& p : model_presets()) {
    if (p.config.name == name) return SimModel(p.config);
  }
  std::string names;
  for (const PresetInfo& p : model_presets()) names += (names.empty() ? "" : ", ") + p.config.name;
  for (const SoftmaxTransformerConfig& s : softmax_presets()) names += ", " + s.name;
  user_error("--model {}: unknown preset (known: {})", name, names);
}

const std::string& SimModel::name() const { return transnormer_ ? transnormer_->name : softmax_->name; }
int64_t SimModel::layers() const { return transnormer_ ? transnormer_->n_layers : softmax_->n_layers; }
int64_t SimModel::width() const { return transnormer_ ? transnormer_->width : softmax_->width; }
int64_t SimModel::parameter_count() const {
  return transnormer_ ? transnormer_->parameter_count() : softmax_->parameter_count();
}

PipelineStage SimModel::stage(int p, int pp) const {
  if (transnormer_) return pipeline_stage(*transnormer_, p, pp);
  // Megatron-LM's split for the softmax transformers it trained: the same
  // number of layers on every stage when pp divides them (the embedding and
  // the head ride on the first and last); otherwise linpar's balance.
  if (softmax_->n_layers % pp == 0) {
    const int64_t per = softmax_->n_layers / pp;
    PipelineStage st;
    st.rank = p;
    st.size = pp;
    st.first_layer = p * per;
    st.end_layer = st.first_layer + per;
    return st;
  }
  ModelConfig layers_only;  // the balance depends on the layer count alone
  layers_only.n_layers = softmax_->n_layers;
  return pipeline_stage(layers_only, p, pp);
}

int64_t SimModel::stage_parameters(int p, int pp, int tp) const {
  if (transnormer_) return sim::stage_parameters(*transnormer_, p, pp, tp);
  const SoftmaxTransformerConfig& m = *softmax_;
  const PipelineStage st = stage(p, pp);
  int64_t n = (st.end_layer - st.first_layer) * m.layer_parameters(tp);
  if (st.first()) n += m.embedding_parameters(tp);
  if (st.last()) {
    n += m.final_norm_parameters();
    // Untied: the head's own matrix; tied across a pipeline: a copy of the
    // table's vocabulary slice on the last stage (Megatron's word embeddings
    // on both ends); tied on one stage: nothing more.
    if (!m.tie_embeddings) {
      n += m.lm_head_parameters(tp);
    } else if (!st.first()) {
      n += m.padded_vocab_size(tp) / tp * m.width;
    }
  }
  return n;
}

bool SimModel::tied_embeddings() const {
  return transnormer_ ? transnormer_->tie_embeddings : softmax_->tie_embeddings;
}

std::vector<int64_t> SimModel::stage_parameter_groups(int p, int pp, int tp) const {
  if (transnormer_) return sim::stage_parameter_groups(*transnormer_, p, pp, tp);
  const SoftmaxTransformerConfig& m = *softmax_;
  const PipelineStage st = stage(p, pp);
  std::vector<int64_t> groups;
  if (st.first()) groups.push_back(m.embedding_parameters(tp));
  for (int64_t l = st.first_layer; l < st.end_layer; ++l) groups.push_back(m.layer_parameters(tp));
  if (st.last()) {
    groups.push_back(m.final_norm_parameters());
    // The head's matrix, or the tied table's copy (its own group, as the
    // TransNormer's), or nothing when tied on one stage.
    const int64_t head =
        stage_parameters(p, pp, tp) - (st.first() ? m.embedding_parameters(tp) : 0) -
        (st.end_layer - st.first_layer) * m.layer_parameters(tp) - m.final_norm_parameters();
    if (head > 0) groups.push_back(head);
  }
  return groups;
}

int64_t SimModel::tied_embedding_parameters(int p, int pp, int tp) const {
  const bool tied = transnormer_ ? transnormer_->tie_embeddings : softmax_->tie_embeddings;
  if (!tied || pp == 1 || (p != 0 && p != pp - 1)) return 0;
  if (transnormer_) return transnormer_->vocab_size * transnormer_->width / tp;
  return softmax_->padded_vocab_size(tp) / tp * softmax_->width;
}

void SimModel::validate(const ShardSpec& s, int pp, int64_t seq_len) const {
  if (s.tp < 1 || s.sp < 1 || pp < 1) user_error("tp {}, sp {}, pp {}: must be positive", s.tp, s.sp, pp);
  if (pp > 1) stage(pp - 1, pp);  // UserError when a stage would hold no layer
  if (transnormer_) {
    // The rules `linpar train` applies, with this shard's degrees.
    Layout l;
    l.tp = s.tp;
    l.tp_sp = s.tp_sp;
    l.sp = s.sp;
    l.sp_kind = s.sp_kind;
    l.pp = pp;
    l.seq_len = seq_len;
    validate_layout(*transnormer_, l);
    return;
  }
  if (s.sp > 1 && s.sp_kind != SequenceParallelKind::Ulysses) {
    user_error("--sp-kind {}: {} is a softmax transformer; its sequence parallelism is ulysses "
               "(LASP and its baselines need linear attention)",
               sp_kind_name(s.sp_kind), softmax_->name);
  }
  validate_softmax_layout(*softmax_, s.tp, s.tp_sp, s.sp, StepShape{1, seq_len, 2});
}

int SimModel::plan_twin(const ShardSpec& s, int sp_rank) const {
  if (s.sp == 1 || softmax_) return 0;
  switch (s.sp_kind) {
    case SequenceParallelKind::Ulysses:
      return 0;
    case SequenceParallelKind::Lasp:
      return sp_rank == 0 || sp_rank == s.sp - 1 ? sp_rank : 1;
    case SequenceParallelKind::Lasp2:
    case SequenceParallelKind::AllGather:
      return sp_rank;
  }
  return sp_rank;
}

OpPlan SimModel::plan(const ShardSpec& s, int sp_rank, int64_t micro_batch, int64_t seq_len,
                      int64_t element_bytes, Recompute recompute) const {
  if (softmax_) {
    return plan_softmax_transformer(*softmax_, s.tp, s.tp_sp, s.sp,
                                    StepShape{micro_batch, seq_len, element_bytes}, recompute);
  }
  const TensorParallel tp{nullptr, 0, s.tp, s.tp_sp};
  const StepShape shape{micro_batch, seq_len / s.sp, element_bytes};
  return plan_model(*transnormer_, tp,
                    SequencePlan{s.sp_kind, sp_rank, s.sp, lasp::make_sequence_attention}, shape,
                    recompute);
}

}  // namespace linpar::sim
