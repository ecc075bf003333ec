// The model a simulation costs: a TransNormerLLM (the model linpar trains; its
// op plan is the one the runtime executes, model/transnormer.h) or a GPT/Llama
// softmax transformer (sim/softmax_transformer.h; planned only, for the
// published runs the simulator is validated against). Both are described by
// their op plans; nothing here restates an architecture.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/op_plan.h"
#include "model/sequence_parallel.h"
#include "model/transnormer.h"
#include "sim/softmax_transformer.h"

namespace linpar::sim {

// How one rank's share of a layer is cut: Megatron TP (optionally with its
// sequence parallelism) and sequence parallelism of the given kind.
struct ShardSpec {
  int tp = 1;
  bool tp_sp = false;
  int sp = 1;
  SequenceParallelKind sp_kind = SequenceParallelKind::Lasp;
};

class SimModel {
 public:
  SimModel(ModelConfig transnormer);  // implicit: a TransNormerLLM config is a model
  SimModel(SoftmaxTransformerConfig softmax);
  // A TransNormerLLM preset (tnl-*) or a GPT/Llama preset; UserError listing
  // both families' names for an unknown one.
  static SimModel from_preset(const std::string& name);

  const std::string& name() const;
  bool is_transnormer() const { return transnormer_.has_value(); }
  const ModelConfig& transnormer() const { return *transnormer_; }
  const SoftmaxTransformerConfig& softmax() const { return *softmax_; }
  int64_t layers() const;
  int64_t width() const;
  int64_t parameter_count() const;

  // Stage p of pp: the trainer's balance (model/transnormer.h) for a
  // TransNormer; Megatron-LM's even split for a softmax transformer when pp
  // divides its layers (the balance otherwise).
  PipelineStage stage(int p, int pp) const;
  // Parameters one TP rank of stage p holds.
  int64_t stage_parameters(int p, int pp, int tp) const;
  // The same in ZeRO's parameter groups (sim::stage_parameter_groups; a
  // softmax transformer's: the embedding, each layer, the final norm, the
  // head).
  std::vector<int64_t> stage_parameter_groups(int p, int pp, int tp) const;
  bool tied_embeddings() const;
  // Of them, a tied embedding table's slice that another stage also holds
  // (the first and the last of pp > 1 when the LM head reuses the
  // embedding: their gradients are summed over the pair); else 0.
  int64_t tied_embedding_parameters(int p, int pp, int tp) const;

  // UserError naming the rule a layout breaks (heads, widths, vocabulary and
  // sequence divisibility; SP kinds the attention supports).
  void validate(const ShardSpec& shard, int pp, int64_t seq_len) const;

  // One micro-batch's forward and backward of the whole model (the step keeps
  // each stage's ops) on SP rank `sp_rank`: micro_batch samples of seq_len
  // tokens (all SP ranks together), activations of element_bytes; each
  // layer's recomputation before its backward (ops of pass Recompute).
  OpPlan plan(const ShardSpec& shard, int sp_rank, int64_t micro_batch, int64_t seq_len,
              int64_t element_bytes, Recompute recompute = Recompute::None) const;
  // The lowest SP rank whose plan equals sp_rank's (op for op: names, FLOPs,
  // bytes, collectives). The strategies' plans depend on the rank only
  // through whether it has a predecessor and a successor (LASP's ring: the
  // middle ranks are alike) or how many chunks precede it (LASP-2, K/V
  // all-gather: every rank differs); Ulysses' ranks and a softmax
  // transformer's are all alike. The test compares the plans.
  int plan_twin(const ShardSpec& shard, int sp_rank) const;

 private:
  std::optional<ModelConfig> transnormer_;
  std::optional<SoftmaxTransformerConfig> softmax_;
};

}  // namespace linpar::sim
