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
#include "model/parameters.h"
#include "model/tensor_parallel.h"
#include "model/token_mixer.h"

namespace linpar {

class TransNormerLLM {
 public:
  struct LayerCache {
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
  TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype = DType::F32,
                 const TensorParallel& tp = {});

  const ModelConfig& config() const { return config_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  DType dtype() const { return dtype_; }

  // tokens, targets: [B, N] i32 -> mean cross-entropy over the B·N targets (nats).
  double forward(const Tensor& tokens, const Tensor& targets, Cache& cache) const;
  // Called during backward with each group of parameters whose gradients this
  // backward has finished (LM head, then each layer from the last, then the
  // embedding), so data parallelism can start reducing them while the rest of
  // backward runs.
  using GradientsReady = std::function<void(const std::vector<Parameter*>&)>;

  // Accumulates parameter gradients of loss_scale · mean loss (loss_scale =
  // 1/micro-batches for gradient accumulation).
  void backward(const Cache& cache, double loss_scale, const GradientsReady& ready = {});

  // Ops of one micro-batch's forward and backward, in execution order.
  OpPlan plan(const StepShape& shape, const ShardLayout& layout = {}) const;

 private:
  ModelConfig config_;
  DType dtype_;
  TensorParallel tp_;
  ParameterSet params_;
  Parameter* embedding_ = nullptr;
  Parameter* lm_head_ = nullptr;  // the embedding itself when tied
  std::vector<TokenMixer> token_mixers_;
  std::vector<ChannelMixer> channel_mixers_;
  std::vector<std::vector<Parameter*>> layer_params_;  // per layer, for GradientsReady
};

// Activation memory of one micro-batch's forward kept for backward, per token
// (elements), as the Cache above holds it; used by the --dry-run estimate.
int64_t activation_elements_per_token(const ModelConfig& config);

}  // namespace linpar
