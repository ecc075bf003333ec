// TransNormerLLM: embedding → L pre-norm blocks → final SRMSNorm → LM head →
// cross-entropy (MODEL.md). Forward and backward are written out by hand, block
// by block, as llm.c does; the activations backward needs live in Cache.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "model/channel_mixer.h"
#include "model/config.h"
#include "model/op_plan.h"
#include "model/parameter_hooks.h"
#include "model/parameters.h"
#include "model/recompute.h"
#include "model/tensor_parallel.h"
#include "model/token_mixer.h"

namespace linpar {

// Which contiguous layers a pipeline stage holds: every stage at least one,
// the rest balanced with the embedding (first stage) and the LM head with the
// loss (last stage) each weighing as much as a layer.
struct PipelineStage {
  int rank = 0, size = 1;
  int64_t first_layer = 0, end_layer = 0;
  bool first() const { return rank == 0; }
  bool last() const { return rank == size - 1; }
};
// UserError when a stage would hold no layer.
PipelineStage pipeline_stage(const ModelConfig& config, int rank, int size);

class TransNormerLLM {
 public:
  // What forward keeps of a layer for its backward: everything (recompute
  // none); selective recomputation drops the token mixer's core
  // (TokenMixer::forward without keep_core); full keeps only the layer's
  // input and the strategy's cache when it keeps one
  // (SequenceAttention::keeps_cache_under_full_recompute), and backward
  // rebuilds the rest first (Pass::Recompute ops).
  struct LayerCache {
    Tensor input;                   // full recomputation: the residual stream entering the layer
    Tensor token_norm, token_rstd;  // SRMSNorm before the token mixer
    TokenMixerCache token_mixer;
    Tensor channel_norm, channel_rstd;  // SRMSNorm before the channel mixer
    ChannelMixerCache channel_mixer;
  };
  struct Cache {
    Tensor tokens, targets;  // [B, N] i32
    std::vector<LayerCache> layers;
    Tensor final_norm, final_rstd;  // [B, N, D], [B·N]
    Tensor logits;                  // [B·N, V/tp]: this rank's vocabulary
    Tensor row_max;                 // [B·N]: softmax statistics over the whole vocabulary
    Tensor sum_exp;
  };

  // With tensor parallelism this rank holds its shard of every parameter
  // (heads, SGLU width and vocabulary split tp ways); every rank of a TP group
  // runs forward and backward on the same tokens and gets the same loss.
  // A pipeline stage holds its layers only, the first stage the embedding and
  // the last the LM head (stage null: the whole model).
  // With sequence parallelism every rank of the SP group holds the same
  // parameters and runs on its chunk of the sequence (tokens [B, N/sp]); the
  // returned loss is the mean over the chunk.
  TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype = DType::F32,
                 const TensorParallel& tp = {}, const PipelineStage* stage = nullptr,
                 const SequenceParallel& sp = {});
  // Interleaved 1F1B (--pp-chunks v): this stage's v model chunks, virtual
  // stages c·pp + s of pp·v (pipeline_stage(config, c·pp + s, pp·v)), in
  // order; forward_stage and backward_stage run one chunk. The first
  // virtual stage holds the embedding, the last the head.
  TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype, const TensorParallel& tp,
                 const std::vector<PipelineStage>& chunks, const SequenceParallel& sp = {});
  // The same model on Device::Meta: parameters of `dtype` with no values
  // (placed for activations in `compute`), whose forward and backward run on
  // meta tensors and count what they would do: the op plan
  // (model/plan_model.h). tp's and sp's groups must be planning ones
  // (core/plan_communicator.h).
  static TransNormerLLM on_meta(const ModelConfig& config, DType dtype, DType compute,
                                const TensorParallel& tp, const PipelineStage* stage,
                                const SequenceParallel& sp);

  const ModelConfig& config() const { return config_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  DType dtype() const { return dtype_; }  // of the activations
  Device device() const { return device_; }

  // Runs the model on `device` with activations in `compute`. Parameters,
  // their gradients and the optimizer state built on them keep their dtype
  // (f32: the master weights); when `compute` differs (bf16 on the GPU) each
  // parameter also keeps a compute copy that forward and backward read
  // (ParameterSet::refresh_compute after every update). Call before building
  // an optimizer or gradient buckets on the parameters.
  void place(Device device, DType compute);

  // What forward keeps for backward and backward recomputes
  // (model/recompute.h; the simulator's memory model, sim/memory.cpp, counts
  // the same). Losses and gradients are the same bits under each.
  void set_recompute(Recompute recompute) { recompute_ = recompute; }
  Recompute recompute() const { return recompute_; }

  // tokens, targets: [B, N] i32 -> mean cross-entropy over the B·N targets (nats).
  double forward(const Tensor& tokens, const Tensor& targets, Cache& cache) const;
  // One pipeline stage: x_in [B, N, D] from the previous stage (ignored on the
  // first, which embeds the tokens); fills x_out [B, N, D] for the next stage,
  // or (last stage) returns the mean loss.
  double forward_stage(const Tensor& tokens, const Tensor& targets, const Tensor& x_in,
                       Tensor& x_out, Cache& cache, int chunk = 0) const;
  // Accumulates parameter gradients of loss_scale · mean loss (loss_scale =
  // 1/micro-batches for gradient accumulation); `last_micro_batch` is passed
  // on to the hooks (DDP and ZeRO-1 reduce after the step's last).
  void backward(const Cache& cache, double loss_scale, bool last_micro_batch = true);
  // One pipeline stage: d_out [B, N, D] from the next stage (ignored on the
  // last); fills d_in [B, N, D] for the previous stage (not on the first).
  void backward_stage(const Cache& cache, const Tensor& d_out, Tensor& d_in, double loss_scale,
                      int chunk = 0, bool last_micro_batch = true);

  // The parameters in groups of use, in the model's order: the embedding
  // (first stage), each layer (of every chunk), the LM head (last stage,
  // unless it is the embedding itself). Forward and backward call `hooks`
  // around each group's use (model/parameter_hooks.h); null: none.
  const std::vector<std::vector<Parameter*>>& parameter_groups() const { return groups_; }
  void set_parameter_hooks(ParameterHooks* hooks) { hooks_ = hooks; }
  // The rank's stage (of pp; its layers from the first chunk's first to the
  // last chunk's end) and its model chunks (virtual stages).
  const PipelineStage& stage() const { return stage_; }
  const std::vector<PipelineStage>& chunks() const { return chunks_; }

 private:
  // Both public constructors and on_meta: the parameters and layers of
  // `chunks` on `build`.
  TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype, const TensorParallel& tp,
                 const std::vector<PipelineStage>& chunks, const SequenceParallel& sp,
                 Device build);

  // Layer l (of this stage) forward on the residual stream x, replaced by
  // the layer's output (under full recomputation the input survives as
  // lc.input).
  void layer_forward(size_t l, Tensor& x, LayerCache& lc) const;
  // Layer l's ops from its input x into cache c (the token mixer with
  // keep_core and `recomputing`, TokenMixer::forward); returns the stream
  // after the layer, or with whole false (recomputation) stops once the
  // channel mixer's cache is made and returns the stream between the mixers.
  Tensor layer_ops(size_t l, Tensor x, LayerCache& c, bool keep_core,
                   const AttentionCache* recomputing, bool whole) const;
  // The cache layer l's backward reads: `kept` itself (recompute none), or
  // rebuilt into `rebuilt` from what forward kept (ops of Pass::Recompute).
  const LayerCache& layer_cache_for_backward(size_t l, const LayerCache& kept,
                                             LayerCache& rebuilt) const;

  ModelConfig config_;
  Recompute recompute_ = Recompute::None;
  SequenceParallel sp_;
  DType dtype_;
  DType stats_dtype_;  // per-row statistics (Tensor::stats_dtype)
  Device device_ = Device::CPU;
  TensorParallel tp_;
  PipelineStage stage_;
  std::vector<PipelineStage> chunks_;
  std::vector<int64_t> chunk_begin_;  // chunk c's layers: [chunk_begin_[c], chunk_begin_[c + 1])
  std::vector<int64_t> layer_index_;  // each of this model's layers' index in the whole model
  ParameterSet params_;
  Parameter* embedding_ = nullptr;
  Parameter* lm_head_ = nullptr;  // the embedding itself when tied
  std::vector<TokenMixer> token_mixers_;
  std::vector<ChannelMixer> channel_mixers_;
  std::vector<std::vector<Parameter*>> groups_;  // parameter_groups()
  int64_t first_layer_group_ = 0;                // groups_ index of this model's first layer
  int head_group_ = -1;  // the LM head's group (the embedding's when tied here)
  ParameterHooks* hooks_ = nullptr;
  // The groups chunk `chunk`'s forward uses, in order (the embedding's
  // group twice when the stage ties it to the head).
  std::vector<int> forward_groups(int chunk) const;
  std::vector<std::string> layer_prefixes_;  // "layers.N.": the layers' op names
};

// Activation memory of one micro-batch's forward kept for backward, per token
// (elements), as the Cache above holds it with recompute none, on one rank:
// an independent count the memory model's test compares with
// (tests/sim/memory_test.cpp).
int64_t activation_elements_per_token(const ModelConfig& config);

}  // namespace linpar
