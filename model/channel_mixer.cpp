#include "model/channel_mixer.h"

#include "core/ops/activation.h"
#include "core/ops/gemm.h"

namespace linpar {

ChannelMixer::ChannelMixer(const ModelConfig& config, int64_t layer, ParameterSet& params,
                           uint64_t seed, DType dtype, const TensorParallel& tp)
    : prefix_(fmt::format("layers.{}.channel_mixer.", layer)),
      tp_(tp),
      width_(config.width),
      glu_dim_(tp.block(config.glu_dim)),
      l1_(params.add_normal(prefix_ + "l1",
                            ShardBox{{config.glu_dim, config.width},
                                     {tp.block_offset(config.glu_dim), 0},
                                     {tp.block(config.glu_dim), config.width}},
                            {tp.block(config.glu_dim), config.width}, dtype, seed,
                            config.init_std)),
      l2_(params.add_normal(prefix_ + "l2",
                            ShardBox{{config.glu_dim, config.width},
                                     {tp.block_offset(config.glu_dim), 0},
                                     {tp.block(config.glu_dim), config.width}},
                            {tp.block(config.glu_dim), config.width}, dtype, seed,
                            config.init_std)),
      l3_(params.add_normal(prefix_ + "l3",
                            ShardBox{{config.width, config.glu_dim},
                                     {0, tp.block_offset(config.glu_dim)},
                                     {config.width, tp.block(config.glu_dim)}},
                            {config.width, tp.block(config.glu_dim)}, dtype, seed,
                            config.init_std)) {}

void ChannelMixer::forward(const Tensor& x, Tensor& out, ChannelMixerCache& c) const {
  const int64_t B = x.dim(0), N = x.dim(1), F = glu_dim_;
  c.a1 = Tensor::empty({B, N, F}, x.dtype(), x.device());
  c.a2 = Tensor::empty({B, N, F}, x.dtype(), x.device());
  c.gated = Tensor::empty({B, N, F}, x.dtype(), x.device());
  linear_forward(x, l1_.weight(), c.a1);
  linear_forward(x, l2_.weight(), c.a2);
  mul_forward(c.a1, c.a2, c.gated);
  // Row-parallel l3: sum the partial outputs (into the stream's layout).
  Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, width_}, x.dtype(), x.device()) : out;
  linear_forward(c.gated, l3_.weight(), partial);
  tp_.reduce_partial(partial, out);
}

void ChannelMixer::backward(const Tensor& d_out, const Tensor& x, const ChannelMixerCache& c,
                            Tensor& dx) const {
  const int64_t B = x.dim(0), N = x.dim(1), F = glu_dim_;
  Tensor d_gated = Tensor::empty({B, N, F}, x.dtype(), x.device());
  linear_backward(tp_.gather_sequence(d_out), c.gated, l3_.weight(), d_gated, l3_.grad);
  Tensor da1 = Tensor::empty({B, N, F}, x.dtype(), x.device()), da2 = Tensor::empty({B, N, F}, x.dtype(), x.device());
  mul_backward(d_gated, c.a1, c.a2, da1, da2);
  // Column-parallel l1, l2: sum the input-gradient parts.
  Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, width_}, x.dtype(), x.device()) : dx;
  linear_backward(da1, x, l1_.weight(), partial, l1_.grad);
  linear_backward(da2, x, l2_.weight(), partial, l2_.grad, /*accumulate_dx=*/true);
  tp_.reduce_partial(partial, dx);
}

void ChannelMixer::plan_layer(const ModelConfig& config, int64_t layer, const TensorParallel& tp,
                              const StepShape& s, bool backward, OpPlan& plan) {
  const std::string prefix_ = fmt::format("layers.{}.channel_mixer.", layer);
  const int64_t rows = s.batch * s.length, D = config.width, F = tp.block(config.glu_dim),
                e = s.element_bytes;
  auto op = [&](const std::string& name, int64_t flops, int64_t read, int64_t written,
                std::vector<PlannedCollective> collectives = {}) {
    plan.add(PlannedOp{prefix_ + name, flops, read * e, written * e, std::move(collectives), {}});
  };
  const int64_t full = rows * D * e;  // one [B, N, D] activation (TP traffic)
  const int64_t act = rows * F;
  if (!backward) {
    op("l1.forward", 2 * rows * D * F, rows * D + F * D, act, tp.plan_gather_sequence(full));
    op("l2.forward", 2 * rows * D * F, rows * D + F * D, act);
    op("gate.forward", mul_forward_flops(act), 2 * act, act);
    op("l3.forward", 2 * rows * F * D, act + D * F, rows * D, tp.plan_reduce_partial(full));
    return;
  }
  op("l3.backward", 2 * (2 * rows * F * D), rows * D + act + D * F, act + D * F,
     tp.plan_gather_sequence(full));
  op("gate.backward", mul_backward_flops(act), 3 * act, 2 * act);
  // The input is gathered again for the weight gradients; the input
  // gradient's parts are summed after l2.
  op("l1.backward", 2 * (2 * rows * D * F), act + rows * D + F * D, rows * D + F * D,
     tp.plan_gather_sequence(full));
  op("l2.backward", 2 * (2 * rows * D * F), act + rows * D + F * D, rows * D + F * D,
     tp.plan_reduce_partial(full));
}

}  // namespace linpar
