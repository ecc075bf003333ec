#include "model/token_mixer.h"

#include "core/op_stats.h"
#include "core/ops/activation.h"
#include "core/ops/gemm.h"
#include "core/ops/lightning_attention.h"
#include "core/ops/lrpe.h"
#include "core/ops/split_qkvu.h"
#include "core/ops/srmsnorm.h"

namespace linpar {

namespace {
std::vector<double> local_slopes(const ModelConfig& config, int64_t layer,
                                 const TensorParallel& tp) {
  const std::vector<double> all = config.layer_slopes(layer);
  const int64_t first = tp.block_offset(config.n_heads), count = tp.block(config.n_heads);
  return std::vector<double>(all.begin() + first, all.begin() + first + count);
}
}  // namespace

TokenMixer::TokenMixer(const ModelConfig& config, int64_t layer, ParameterSet& params,
                       uint64_t seed, DType dtype, const TensorParallel& tp,
                       const SequenceParallel& sp)
    : prefix_(fmt::format("layers.{}.token_mixer.", layer)),
      tp_(tp),
      sp_(sp),
      n_heads_(tp.block(config.n_heads)),
      head_dim_(config.head_dim()),
      width_(config.width),
      local_width_(tp.block(config.n_heads) * config.head_dim()),
      attention_block_(config.attention_block),
      norm_eps_(config.norm_eps),
      use_lrpe_(config.layer_uses_lrpe(layer)),
      slopes_(local_slopes(config, layer, tp)),
      // qkvu_proj as a [4, D, D] tensor (q, k, v, u blocks): this rank's box is
      // rows [t·D/tp, (t+1)·D/tp) of each block, used as a [4·D/tp, D] matrix.
      qkvu_proj_(params.add_normal(prefix_ + "qkvu_proj",
                                   ShardBox{{4, config.width, config.width},
                                            {0, tp.block_offset(config.width), 0},
                                            {4, tp.block(config.width), config.width}},
                                   {4 * tp.block(config.width), config.width}, dtype, seed,
                                   config.init_std)),
      out_proj_(params.add_normal(prefix_ + "out_proj",
                                  ShardBox{{config.width, config.width},
                                           {0, tp.block_offset(config.width)},
                                           {config.width, tp.block(config.width)}},
                                  {config.width, tp.block(config.width)}, dtype, seed,
                                  config.init_std)) {
  if (use_lrpe_) {
    const int64_t first = tp.block_offset(config.width), count = tp.block(config.width);
    lrpe_theta_ = &params.add_computed(
        prefix_ + "lrpe.theta", {count}, dtype, /*weight_decay=*/false,
        ShardBox{{config.width}, {first}, {count}}, [&] {
          const std::vector<double> theta = lrpe_initial_theta(config.width);
          std::vector<double> mine(theta.begin() + first, theta.begin() + first + count);
          return Tensor::from_vector<double>({count}, mine).to(dtype);
        });
  }
}

void TokenMixer::split_heads(TokenMixerCache& c) const {
  const int64_t B = c.qkvu.dim(0), N = c.qkvu.dim(1), Dl = local_width_, H = n_heads_,
                d = head_dim_;
  const int64_t position_offset = sp_.position_offset(N);  // LRPE's angles use global positions
  const DType dt = c.qkvu.dtype();
  const Device dev = c.qkvu.device();
  // One pass: q, k (after SiLU) and v into the head layout, u as columns.
  c.q = Tensor::empty({B, H, N, d}, dt, dev);
  c.k = Tensor::empty({B, H, N, d}, dt, dev);
  c.v = Tensor::empty({B, H, N, d}, dt, dev);
  c.u = Tensor::empty({B, N, Dl}, dt, dev);
  {
    const OpScope op(prefix_, "split_qkvu.forward");
    split_qkvu_forward(c.qkvu, c.q, c.k, c.v, c.u);
  }
  if (!use_lrpe_) return;
  const OpScope op(prefix_, "lrpe.forward");
  c.q_rot = Tensor::empty({B, H, N, 2 * d}, dt, dev);
  c.k_rot = Tensor::empty({B, H, N, 2 * d}, dt, dev);
  lrpe_forward(c.q, lrpe_theta_->weight(), position_offset, c.q_rot);
  lrpe_forward(c.k, lrpe_theta_->weight(), position_offset, c.k_rot);
}

void TokenMixer::attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& attention,
                        AttentionCache& cache, const AttentionCache* recomputing) const {
  if (sp_.attention != nullptr) {
    const OpPrefix named(prefix_);  // the strategy's ops are this layer's
    if (recomputing != nullptr) {
      sp_.attention->recompute(q, k, v, slopes_, attention_block_, *recomputing, attention);
      cache = *recomputing;
    } else {
      sp_.attention->forward(q, k, v, slopes_, attention_block_, attention, cache);
    }
    return;
  }
  const OpScope op(prefix_, "lightning_attention.forward");
  Tensor no_state;
  lightning_attention_forward(q, k, v, slopes_, attention_block_, no_state, attention, no_state);
}

void TokenMixer::forward(const Tensor& x_stream, Tensor& out, TokenMixerCache& c, bool keep_core,
                         const AttentionCache* recomputing) const {
  // The residual stream's tokens, all N of them, or N/tp under --tp-sp.
  const int64_t B = x_stream.dim(0), N = tp_.gathered_length(x_stream.dim(1)), D = width_,
                Dl = local_width_, H = n_heads_, d = head_dim_;
  const DType dt = x_stream.dtype(), st = Tensor::stats_dtype(dt, x_stream.device());
  const Device dev = x_stream.device();
  c.qkvu = Tensor::empty({B, N, 4 * Dl}, dt, dev);
  {
    const OpScope op(prefix_, "qkvu_proj.forward", ProductWeight::QkvuProj);
    linear_forward(tp_.gather_sequence(x_stream), qkvu_proj_.weight(), c.qkvu);
  }

  split_heads(c);
  Tensor attention = Tensor::empty({B, H, N, d}, dt, dev);
  attend(use_lrpe_ ? c.q_rot : c.q, use_lrpe_ ? c.k_rot : c.k, c.v, attention, c.attention,
         recomputing);
  // SRMSNorm over the full width D of the concatenated heads, read straight
  // from the head layout: the row sums of squares are summed over the TP group.
  Tensor sums = Tensor::empty({B * N}, st, dev);
  {
    const OpScope op(prefix_, "attention_norm.forward");
    srmsnorm_row_sums_heads(attention, sums);
    tp_.all_reduce(sums);
    c.attention_norm = Tensor::empty({B, N, Dl}, dt, dev);
    c.attention_rstd = Tensor::empty({B * N}, st, dev);
    srmsnorm_apply_heads(attention, sums, D, norm_eps_, c.attention_norm, c.attention_rstd);
  }
  attention = Tensor();
  c.gated = Tensor::empty({B, N, Dl}, dt, dev);
  {
    const OpScope op(prefix_, "gate.forward");
    mul_forward(c.u, c.attention_norm, c.gated);
  }
  // Row-parallel out_proj: sum the partial outputs (into the stream's layout).
  {
    const OpScope op(prefix_, "out_proj.forward", ProductWeight::OutProj);
    Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, D}, dt, dev) : out;
    linear_forward(c.gated, out_proj_.weight(), partial);
    tp_.reduce_partial(partial, out);
  }
  if (!keep_core) {
    // Selective recomputation: what lies between the two projections goes;
    // recompute_core rebuilds it.
    c.q = c.k = c.v = c.u = c.q_rot = c.k_rot = Tensor();
    c.attention_norm = c.attention_rstd = Tensor();
    c.attention_sums = std::move(sums);
  }
}

void TokenMixer::recompute_core(TokenMixerCache& c) const {
  const int64_t B = c.qkvu.dim(0), N = c.qkvu.dim(1), D = width_, Dl = local_width_, H = n_heads_,
                d = head_dim_;
  const DType dt = c.qkvu.dtype(), st = Tensor::stats_dtype(dt, c.qkvu.device());
  const Device dev = c.qkvu.device();
  LINPAR_CHECK(c.attention_sums.defined(), "{}: recompute_core after a forward that kept its core",
               prefix_);
  split_heads(c);
  Tensor attention = Tensor::empty({B, H, N, d}, dt, dev);
  const AttentionCache kept = c.attention;  // what the strategy's forward kept
  attend(use_lrpe_ ? c.q_rot : c.q, use_lrpe_ ? c.k_rot : c.k, c.v, attention, c.attention,
         sp_.attention != nullptr ? &kept : nullptr);
  // The norm's values and rstd from the kept row sums: forward's apply again.
  const OpScope op(prefix_, "attention_norm.forward");
  c.attention_norm = Tensor::empty({B, N, Dl}, dt, dev);
  c.attention_rstd = Tensor::empty({B * N}, st, dev);
  srmsnorm_apply_heads(attention, c.attention_sums, D, norm_eps_, c.attention_norm,
                       c.attention_rstd);
}

void TokenMixer::backward(const Tensor& d_out, const Tensor& x_stream, const TokenMixerCache& c,
                          Tensor& dx) const {
  const int64_t B = c.qkvu.dim(0), N = c.qkvu.dim(1), D = width_, Dl = local_width_, H = n_heads_,
                d = head_dim_;
  const int64_t position_offset = sp_.position_offset(N);
  const DType dt = c.qkvu.dtype(), st = Tensor::stats_dtype(dt, c.qkvu.device());
  const Device dev = c.qkvu.device();

  // The block's input gathered again for qkvu_proj's weight gradient (at the
  // block's start, as Megatron-LM does; the plan counts it here).
  Tensor x;
  Tensor d_gated = Tensor::empty({B, N, Dl}, dt, dev);
  {
    const OpScope op(prefix_, "out_proj.backward", ProductWeight::OutProj);
    x = tp_.gather_sequence(x_stream);
    linear_backward(tp_.gather_sequence(d_out), c.gated, out_proj_.weight(), d_gated,
                    out_proj_.grad);
  }

  Tensor du = Tensor::empty({B, N, Dl}, dt, dev), d_norm = Tensor::empty({B, N, Dl}, dt, dev);
  {
    const OpScope op(prefix_, "gate.backward");
    mul_backward(d_gated, c.u, c.attention_norm, du, d_norm);
  }
  Tensor d_attention = Tensor::empty({B, H, N, d}, dt, dev);  // written in the head layout
  {
    const OpScope op(prefix_, "attention_norm.backward");
    Tensor dots = Tensor::empty({B * N}, st, dev);
    srmsnorm_row_dots(d_norm, c.attention_norm, dots);
    tp_.all_reduce(dots);
    srmsnorm_backward_apply_heads(d_norm, c.attention_norm, c.attention_rstd, dots, D, d_attention);
  }

  const int64_t dk = use_lrpe_ ? 2 * d : d;
  Tensor dq_att = Tensor::empty({B, H, N, dk}, dt, dev), dk_att = Tensor::empty({B, H, N, dk}, dt, dev);
  Tensor dv = Tensor::empty({B, H, N, d}, dt, dev);
  const Tensor& q_att = use_lrpe_ ? c.q_rot : c.q;
  const Tensor& k_att = use_lrpe_ ? c.k_rot : c.k;
  if (sp_.attention != nullptr) {
    const OpPrefix named(prefix_);
    sp_.attention->backward(q_att, k_att, c.v, slopes_, attention_block_, c.attention, d_attention,
                            dq_att, dk_att, dv);
  } else {
    const OpScope op(prefix_, "lightning_attention.backward");
    Tensor no_state;
    lightning_attention_backward(q_att, k_att, c.v, slopes_, attention_block_, no_state,
                                 d_attention, no_state, dq_att, dk_att, dv, no_state);
  }

  Tensor dq = dq_att, dk_ = dk_att;
  if (use_lrpe_) {
    const OpScope op(prefix_, "lrpe.backward");
    dq = Tensor::empty({B, H, N, d}, dt, dev);
    dk_ = Tensor::empty({B, H, N, d}, dt, dev);
    lrpe_backward(dq_att, c.q, lrpe_theta_->weight(), position_offset, dq, lrpe_theta_->grad);
    lrpe_backward(dk_att, c.k, lrpe_theta_->weight(), position_offset, dk_, lrpe_theta_->grad);
  }
  // One pass: SiLU's backward on q and k (their raw values read from qkvu) and
  // all four gradients back into the projection's columns.
  Tensor d_qkvu = Tensor::empty({B, N, 4 * Dl}, dt, dev);
  {
    const OpScope op(prefix_, "split_qkvu.backward");
    split_qkvu_backward(dq, dk_, dv, du, c.qkvu, d_qkvu);
  }
  // Column-parallel qkvu_proj: sum the input-gradient parts.
  const OpScope op(prefix_, "qkvu_proj.backward", ProductWeight::QkvuProj);
  Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, D}, dt, dev) : dx;
  linear_backward(d_qkvu, x, qkvu_proj_.weight(), partial, qkvu_proj_.grad);
  tp_.reduce_partial(partial, dx);
}

}  // namespace linpar
