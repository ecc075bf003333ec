#include "model/transnormer.h"

#include <algorithm>

#include "core/op_stats.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/gemm.h"
#include "core/ops/srmsnorm.h"

namespace linpar {

PipelineStage pipeline_stage(const ModelConfig& config, int rank, int size) {
  if (config.n_layers < size) {
    user_error("--pp {}: {} layers do not give every stage a layer (layers must be at least pp)",
               size, config.n_layers);
  }
  // Every stage gets one layer; each further layer goes to the least loaded
  // stage (the earliest on ties), where the embedding and the head each weigh
  // as much as a layer on the first and the last stage. In closed form (the
  // simulator's layout search calls this millions of times; the test checks
  // it against the greedy loop): the middle stages, at load 1, are filled in
  // order up to the ends' load 2, then the rest go round all stages in order.
  PipelineStage stage;
  stage.rank = rank;
  stage.size = size;
  if (size == 1) {
    stage.end_layer = config.n_layers;
    return stage;
  }
  const int64_t extra = config.n_layers - size;
  const int64_t middle = std::min<int64_t>(extra, size - 2);  // stages 1..middle get one
  const int64_t rest = extra - middle, rounds = rest / size, left = rest % size;
  // This stage's layers, and the layers of the stages before it.
  const int64_t layers = 1 + (rank >= 1 && rank <= middle ? 1 : 0) + rounds + (rank < left ? 1 : 0);
  stage.first_layer = rank + std::clamp<int64_t>(rank - 1, 0, middle) + rank * rounds + std::min<int64_t>(rank, left);
  stage.end_layer = stage.first_layer + layers;
  return stage;
}

namespace {
std::vector<PipelineStage> one_chunk(const ModelConfig& config, const PipelineStage* stage) {
  return {stage != nullptr ? *stage : PipelineStage{0, 1, 0, config.n_layers}};
}
}  // namespace

TransNormerLLM::TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype,
                               const TensorParallel& tp, const PipelineStage* stage,
                               const SequenceParallel& sp)
    : TransNormerLLM(config, seed, dtype, tp, one_chunk(config, stage), sp, Device::CPU) {}

TransNormerLLM::TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype,
                               const TensorParallel& tp, const std::vector<PipelineStage>& chunks,
                               const SequenceParallel& sp)
    : TransNormerLLM(config, seed, dtype, tp, chunks, sp, Device::CPU) {}

TransNormerLLM TransNormerLLM::on_meta(const ModelConfig& config, DType dtype, DType compute,
                                       const TensorParallel& tp, const PipelineStage* stage,
                                       const SequenceParallel& sp) {
  TransNormerLLM model(config, 0, dtype, tp, one_chunk(config, stage), sp, Device::Meta);
  model.place(Device::Meta, compute);
  return model;
}

TransNormerLLM::TransNormerLLM(const ModelConfig& config, uint64_t seed, DType dtype,
                               const TensorParallel& tp, const std::vector<PipelineStage>& chunks,
                               const SequenceParallel& sp, Device build)
    : config_(config),
      sp_(sp),
      dtype_(dtype),
      stats_dtype_(dtype),
      device_(build),
      tp_(tp),
      chunks_(chunks),
      params_(build) {
  config_.validate();
  validate_tensor_parallel(config_, tp.size);
  LINPAR_CHECK(!chunks_.empty(), "a model of no pipeline chunk");
  // The rank's stage: its first chunk holds the embedding when it is the
  // first (virtual) stage, its last the head when it is the last.
  stage_ = chunks_.front();
  stage_.end_layer = chunks_.back().end_layer;
  if (chunks_.size() > 1) {
    stage_.size = chunks_.front().size / static_cast<int>(chunks_.size());
    LINPAR_CHECK(
        chunks_.back().rank == stage_.rank + (static_cast<int>(chunks_.size()) - 1) * stage_.size,
        "model chunks of virtual stages {} … {} are not one stage's", chunks_.front().rank,
        chunks_.back().rank);
  }
  // Vocabulary-parallel embedding and LM head: rows [t·V/tp, (t+1)·V/tp).
  const int64_t V = config.vocab_size, D = config.width;
  const ShardBox vocab_rows{{V, D}, {tp.block_offset(V), 0}, {tp.block(V), D}};
  if (stage_.first()) {
    embedding_ = &params_.add_normal("embedding", vocab_rows, {tp.block(V), D}, dtype, seed,
                                     config.init_std);
  }
  if (embedding_ != nullptr) groups_.push_back({embedding_});
  first_layer_group_ = static_cast<int64_t>(groups_.size());
  int64_t layers = 0;
  for (const PipelineStage& chunk : chunks_) layers += chunk.end_layer - chunk.first_layer;
  token_mixers_.reserve(static_cast<size_t>(layers));
  channel_mixers_.reserve(static_cast<size_t>(layers));
  for (const PipelineStage& chunk : chunks_) {
    chunk_begin_.push_back(static_cast<int64_t>(layer_index_.size()));
    for (int64_t l = chunk.first_layer; l < chunk.end_layer; ++l) {
      const size_t before = params_.all().size();
      token_mixers_.emplace_back(config, l, params_, seed, dtype, tp, sp);
      layer_prefixes_.push_back(fmt::format("layers.{}.", l));
      layer_index_.push_back(l);
      channel_mixers_.emplace_back(config, l, params_, seed, dtype, tp);
      std::vector<Parameter*> added;
      for (size_t i = before; i < params_.all().size(); ++i) added.push_back(&params_.all()[i]);
      groups_.push_back(std::move(added));
    }
  }
  chunk_begin_.push_back(static_cast<int64_t>(layer_index_.size()));
  if (stage_.last()) {
    if (!config.tie_embeddings) {
      lm_head_ = &params_.add_normal("lm_head", vocab_rows, {tp.block(V), D}, dtype, seed, config.init_std);
    } else if (embedding_ != nullptr) {
      lm_head_ = embedding_;
    } else {
      // Tied embeddings across pipeline stages (as Megatron-LM does): the last
      // stage holds its own copy of the embedding, drawn identically; the
      // trainer sums the two copies' gradients, so both take the same updates.
      // The copy is left out of the gradient norm, which counts it once.
      lm_head_ = &params_.add_normal("embedding", vocab_rows, {tp.block(V), D}, dtype, seed, config.init_std);
      lm_head_->counted_in_norm = false;
    }
    if (lm_head_ == embedding_) {
      head_group_ = 0;
    } else {
      head_group_ = static_cast<int>(groups_.size());
      groups_.push_back({lm_head_});
    }
  }
}

std::vector<int> TransNormerLLM::forward_groups(int chunk) const {
  const PipelineStage& at = chunks_.at(static_cast<size_t>(chunk));
  std::vector<int> order;
  if (at.first()) order.push_back(0);
  for (int64_t l = chunk_begin_[static_cast<size_t>(chunk)];
       l < chunk_begin_[static_cast<size_t>(chunk) + 1]; ++l)
    order.push_back(static_cast<int>(first_layer_group_ + l));
  if (at.last()) order.push_back(head_group_);
  return order;
}

void TransNormerLLM::place(Device device, DType compute) {
  if (device == Device::CPU) {
    LINPAR_CHECK(compute == DType::F32 || compute == DType::F64,
                 "the CPU computes in f32 or f64, not {}", dtype_name(compute));
  } else if (device == Device::Meta) {
    LINPAR_CHECK(compute != DType::I32, "a plan computes in a floating type");
  } else {
    LINPAR_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "the GPU computes in f32 or bf16, not {}", dtype_name(compute));
  }
  params_.place(device, compute);
  device_ = device;
  dtype_ = compute;
  stats_dtype_ = Tensor::stats_dtype(compute, device);
}

double TransNormerLLM::forward(const Tensor& tokens, const Tensor& targets, Cache& c) const {
  LINPAR_CHECK(stage_.size == 1, "forward() of one pipeline stage: use forward_stage()");
  Tensor none;
  return forward_stage(tokens, targets, none, none, c);
}

double TransNormerLLM::forward_stage(const Tensor& tokens, const Tensor& targets,
                                     const Tensor& x_in, Tensor& x_out, Cache& c, int chunk) const {
  const PipelineStage& at = chunks_.at(static_cast<size_t>(chunk));
  const int64_t B = tokens.dim(0), N = tokens.dim(1), D = config_.width, V = config_.vocab_size;
  // The batch comes from the host; the cache keeps it on the model's device.
  c.tokens = tokens.device() == device_ ? tokens : tokens.to(device_);
  c.targets = targets.device() == device_ ? targets : targets.to(device_);
  const int64_t V_local = tp_.block(V), vocab_offset = tp_.block_offset(V);
  // The residual stream: [B, N, D], or this rank's sequence shard [B, N/tp, D]
  // under Megatron sequence parallelism (blocks gather their input).
  const int64_t Ns = tp_.stream_length(N);
  // The hooks around each group's use (ZeRO-3 gathers and frees weights),
  // told which group comes next.
  const std::vector<int> order = hooks_ != nullptr ? forward_groups(chunk) : std::vector<int>{};
  size_t at_group = 0;
  auto use = [&] {
    if (hooks_ == nullptr) return;
    const int next = at_group + 1 < order.size() ? order[at_group + 1] : -1;
    hooks_->before_forward(order[at_group], next);
  };
  auto used = [&] {
    if (hooks_ == nullptr) return;
    hooks_->after_forward(order[at_group++]);
  };
  Tensor x = Tensor::empty({B, Ns, D}, dtype_, device_);
  if (at.first()) {
    use();
    // Each rank fills the rows of its vocabulary; the sum is the embedding.
    const OpPlace place(kEmbeddingLayer, Pass::Forward);
    const OpScope op("embedding.forward");
    Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, D}, dtype_, device_) : x;
    embedding_forward(c.tokens, embedding_->weight(), config_.embedding_scale(), partial, vocab_offset, V);
    tp_.reduce_partial(partial, x);
    used();
  } else {
    x.copy_from(x_in);
  }

  const int64_t begin = chunk_begin_[static_cast<size_t>(chunk)],
                end = chunk_begin_[static_cast<size_t>(chunk) + 1];
  c.layers.assign(static_cast<size_t>(end - begin), LayerCache{});
  for (int64_t l = begin; l < end; ++l) {
    use();
    const OpPlace place(layer_index_[static_cast<size_t>(l)], Pass::Forward);
    layer_forward(static_cast<size_t>(l), x, c.layers[static_cast<size_t>(l - begin)]);
    used();
  }
  if (!at.last()) {
    x_out.copy_from(x);
    return 0.0;
  }

  const OpPlace place(kHeadLayer, Pass::Forward);
  c.final_norm = Tensor::empty({B, Ns, D}, dtype_, device_);
  c.final_rstd = Tensor::empty({B * Ns}, stats_dtype_, device_);
  {
    const OpScope op("final_norm.forward");
    srmsnorm_forward(x, config_.norm_eps, c.final_norm, c.final_rstd);
  }
  c.logits = Tensor::empty({B * N, V_local}, dtype_, device_);
  use();
  {
    const OpScope op("lm_head.forward", ProductWeight::LmHead);
    linear_forward(tp_.gather_sequence(c.final_norm), lm_head_->weight(), c.logits);
  }
  used();
  // Vocabulary-parallel cross-entropy: no rank holds all the logits.
  c.row_max = Tensor::empty({B * N}, stats_dtype_, device_);
  c.sum_exp = Tensor::empty({B * N}, stats_dtype_, device_);
  Tensor target_logit = Tensor::empty({B * N}, stats_dtype_, device_);
  Tensor losses = Tensor::empty({B * N}, stats_dtype_, device_);
  {
    const OpScope op("cross_entropy.forward");
    cross_entropy_local_max(c.logits, c.row_max);
    tp_.all_reduce_max(c.row_max);
    cross_entropy_local_sums(c.logits, c.targets, vocab_offset, c.row_max, c.sum_exp, target_logit);
    tp_.all_reduce(c.sum_exp);
    tp_.all_reduce(target_logit);
    cross_entropy_losses(c.row_max, c.sum_exp, target_logit, losses);
  }
  if (losses.is_meta()) return 0.0;  // a plan: no values
  double total = 0;
  for (double v : losses.to(Device::CPU).to(DType::F64).to_vector<double>()) total += v;
  return total / static_cast<double>(B * N);
}

void TransNormerLLM::backward(const Cache& c, double loss_scale, bool last_micro_batch) {
  LINPAR_CHECK(stage_.size == 1, "backward() of one pipeline stage: use backward_stage()");
  Tensor none;
  backward_stage(c, none, none, loss_scale, 0, last_micro_batch);
}

void TransNormerLLM::backward_stage(const Cache& c, const Tensor& d_out, Tensor& d_in,
                                    double loss_scale, int chunk, bool last_micro_batch) {
  const PipelineStage& at = chunks_.at(static_cast<size_t>(chunk));
  // Backward's order of groups: forward's reversed. A group is finished at
  // its last place in it (the tied embedding's is the input's backward).
  std::vector<int> order = hooks_ != nullptr ? forward_groups(chunk) : std::vector<int>{};
  std::reverse(order.begin(), order.end());
  size_t at_group = 0;
  auto use = [&] {
    if (hooks_ == nullptr) return;
    const int next = at_group + 1 < order.size() ? order[at_group + 1] : -1;
    hooks_->before_backward(order[at_group], next);
  };
  auto used = [&] {
    if (hooks_ == nullptr) return;
    const int group = order[at_group++];
    if (std::find(order.begin() + static_cast<std::ptrdiff_t>(at_group), order.end(), group) ==
        order.end())
      hooks_->after_backward(group, last_micro_batch);
  };
  const int64_t B = c.tokens.dim(0), N = c.tokens.dim(1), D = config_.width, V = config_.vocab_size;
  const int64_t vocab_offset = tp_.block_offset(V), Ns = tp_.stream_length(N);
  Tensor d_norm = Tensor::empty({B, Ns, D}, dtype_, device_);
  Tensor dx = Tensor::empty({B, Ns, D}, dtype_, device_);  // gradient of the residual stream
  if (!at.last()) {
    dx.copy_from(d_out);
  } else {
    const OpPlace place(kHeadLayer, Pass::Backward);
    Tensor d_logits = Tensor::empty({B * N, tp_.block(V)}, dtype_, device_);
    {
      const OpScope op("cross_entropy.backward");
      cross_entropy_backward_sharded(c.logits, c.targets, vocab_offset, c.row_max, c.sum_exp,
                                     loss_scale / static_cast<double>(B * N), d_logits);
    }
    use();
    {
      // Vocabulary-parallel head: sum the input-gradient parts.
      const OpScope op("lm_head.backward", ProductWeight::LmHead);
      Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, D}, dtype_, device_) : d_norm;
      linear_backward(d_logits, tp_.gather_sequence(c.final_norm), lm_head_->weight(), partial,
                      lm_head_->grad);
      tp_.reduce_partial(partial, d_norm);
    }
    used();
    const OpScope op("final_norm.backward");
    srmsnorm_backward(d_norm, c.final_norm, c.final_rstd, dx);
  }

  const int64_t begin = chunk_begin_[static_cast<size_t>(chunk)],
                end = chunk_begin_[static_cast<size_t>(chunk) + 1];
  for (int64_t l = end - 1; l >= begin; --l) {
    use();
    LayerCache rebuilt;
    const LayerCache& lc = layer_cache_for_backward(
        static_cast<size_t>(l), c.layers[static_cast<size_t>(l - begin)], rebuilt);
    const std::string& prefix = layer_prefixes_[static_cast<size_t>(l)];
    const OpPlace place(layer_index_[static_cast<size_t>(l)], Pass::Backward);
    // x += SGLU(SRMSNorm(x)): the residual passes dx through; the branch adds.
    channel_mixers_[static_cast<size_t>(l)].backward(dx, lc.channel_norm, lc.channel_mixer, d_norm);
    {
      const OpScope op(prefix, "channel_norm.backward");
      srmsnorm_backward(d_norm, lc.channel_norm, lc.channel_rstd, dx, /*accumulate=*/true);
    }
    token_mixers_[static_cast<size_t>(l)].backward(dx, lc.token_norm, lc.token_mixer, d_norm);
    {
      const OpScope op(prefix, "token_norm.backward");
      srmsnorm_backward(d_norm, lc.token_norm, lc.token_rstd, dx, /*accumulate=*/true);
    }
    used();
  }
  if (!at.first()) {
    d_in.copy_from(dx);
    return;
  }
  use();
  {
    const OpPlace place(kEmbeddingLayer, Pass::Backward);
    const OpScope op("embedding.backward");
    embedding_backward(tp_.gather_sequence(dx), c.tokens, config_.embedding_scale(),
                       embedding_->grad, vocab_offset);
  }
  used();
}

Tensor TransNormerLLM::layer_ops(size_t l, Tensor x, LayerCache& c, bool keep_core,
                                 const AttentionCache* recomputing, bool whole) const {
  const int64_t B = x.dim(0), Ns = x.dim(1), D = config_.width;
  const std::string& prefix = layer_prefixes_[l];
  c.token_norm = Tensor::empty({B, Ns, D}, dtype_, device_);
  c.token_rstd = Tensor::empty({B * Ns}, stats_dtype_, device_);
  {
    const OpScope op(prefix, "token_norm.forward");
    srmsnorm_forward(x, config_.norm_eps, c.token_norm, c.token_rstd);
  }
  Tensor mid = Tensor::empty({B, Ns, D}, dtype_, device_);
  token_mixers_[l].forward(c.token_norm, mid, c.token_mixer, keep_core, recomputing);
  {
    // x + GLA(SRMSNorm(x)) into the branch (the same bits as adding the
    // branch into x); x's storage goes unless a cache keeps it.
    const OpScope op(prefix, "token_residual.forward");
    axpy(1.0, x, mid);
    x = Tensor();
  }
  c.channel_norm = Tensor::empty({B, Ns, D}, dtype_, device_);
  c.channel_rstd = Tensor::empty({B * Ns}, stats_dtype_, device_);
  {
    const OpScope op(prefix, "channel_norm.forward");
    srmsnorm_forward(mid, config_.norm_eps, c.channel_norm, c.channel_rstd);
  }
  Tensor branch = whole ? Tensor::empty({B, Ns, D}, dtype_, device_) : Tensor();
  channel_mixers_[l].forward(c.channel_norm, branch, c.channel_mixer);
  if (whole) {
    const OpScope op(prefix, "channel_residual.forward");
    axpy(1.0, branch, mid);  // += SGLU(SRMSNorm(·))
  }
  return mid;
}

void TransNormerLLM::layer_forward(size_t l, Tensor& x, LayerCache& lc) const {
  if (recompute_ != Recompute::Full) {
    x = layer_ops(l, std::move(x), lc, /*keep_core=*/recompute_ != Recompute::Selective, nullptr,
                  /*whole=*/true);
    return;
  }
  // Full recomputation: the layer's input stays; its cache lives only
  // through this call, but for the strategy's when it keeps one.
  LayerCache scratch;
  lc.input = x;
  x = layer_ops(l, std::move(x), scratch, /*keep_core=*/true, nullptr, /*whole=*/true);
  if (sp_.attention != nullptr && sp_.attention->keeps_cache_under_full_recompute()) {
    lc.token_mixer.attention = std::move(scratch.token_mixer.attention);
  }
}

const TransNormerLLM::LayerCache& TransNormerLLM::layer_cache_for_backward(size_t l,
                                                                           const LayerCache& kept,
                                                                           LayerCache& out) const {
  if (recompute_ == Recompute::None) return kept;
  const OpPlace place(layer_index_[l], Pass::Recompute);
  if (recompute_ == Recompute::Selective) {
    out = kept;  // the tensors shared, not copied
    token_mixers_[l].recompute_core(out.token_mixer);
    return out;
  }
  // Full: the layer's forward again from its input, as far as its cache
  // goes (the channel mixer's output and the last residual add feed nothing
  // backward reads).
  const bool cached = sp_.attention != nullptr && sp_.attention->keeps_cache_under_full_recompute();
  layer_ops(l, kept.input, out, /*keep_core=*/true, cached ? &kept.token_mixer.attention : nullptr,
            /*whole=*/false);
  return out;
}

int64_t activation_elements_per_token(const ModelConfig& config) {
  const int64_t D = config.width, F = config.glu_dim, V = config.vocab_size;
  int64_t per_token = 0;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    per_token += 2 * D + 2;              // two SRMSNorm outputs and rstds
    per_token += 4 * D + 3 * D + 3 * D;  // qkvu (holds the raw q, k); q, k, v; u, norm, gate
    if (config.layer_uses_lrpe(l)) per_token += 4 * D;  // q_rot, k_rot
    per_token += 1;                                     // attention rstd
    per_token += 3 * F;                                 // a1, a2, gate
  }
  per_token += D + 1 + V;  // final norm, rstd, logits
  return per_token;
}

}  // namespace linpar
