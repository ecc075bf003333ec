#include "model/channel_mixer.h"

#include "core/op_stats.h"
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

void ChannelMixer::forward(const Tensor& x_stream, Tensor& out, ChannelMixerCache& c) const {
  const int64_t B = x_stream.dim(0), N = tp_.gathered_length(x_stream.dim(1)), F = glu_dim_;
  const DType dt = x_stream.dtype();
  const Device dev = x_stream.device();
  c.a1 = Tensor::empty({B, N, F}, dt, dev);
  c.a2 = Tensor::empty({B, N, F}, dt, dev);
  c.gated = Tensor::empty({B, N, F}, dt, dev);
  Tensor x;
  {
    const OpScope op(prefix_, "l1.forward");
    x = tp_.gather_sequence(x_stream);
    linear_forward(x, l1_.weight(), c.a1);
  }
  {
    const OpScope op(prefix_, "l2.forward");
    linear_forward(x, l2_.weight(), c.a2);
  }
  {
    const OpScope op(prefix_, "gate.forward");
    mul_forward(c.a1, c.a2, c.gated);
  }
  // Row-parallel l3: sum the partial outputs (into the stream's layout).
  const OpScope op(prefix_, "l3.forward");
  Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, width_}, dt, dev) : out;
  linear_forward(c.gated, l3_.weight(), partial);
  tp_.reduce_partial(partial, out);
}

void ChannelMixer::backward(const Tensor& d_out, const Tensor& x_stream, const ChannelMixerCache& c,
                            Tensor& dx) const {
  const int64_t B = c.a1.dim(0), N = c.a1.dim(1), F = glu_dim_;
  const DType dt = c.a1.dtype();
  const Device dev = c.a1.device();
  // The block's input gathered again for l1's and l2's weight gradients (at
  // the block's start, as Megatron-LM does; the plan counts it here).
  Tensor x;
  Tensor d_gated = Tensor::empty({B, N, F}, dt, dev);
  {
    const OpScope op(prefix_, "l3.backward");
    x = tp_.gather_sequence(x_stream);
    linear_backward(tp_.gather_sequence(d_out), c.gated, l3_.weight(), d_gated, l3_.grad);
  }
  Tensor da1 = Tensor::empty({B, N, F}, dt, dev), da2 = Tensor::empty({B, N, F}, dt, dev);
  {
    const OpScope op(prefix_, "gate.backward");
    mul_backward(d_gated, c.a1, c.a2, da1, da2);
  }
  // Column-parallel l1, l2: sum the input-gradient parts.
  Tensor partial = tp_.shards_sequence() ? Tensor::empty({B, N, width_}, dt, dev) : dx;
  {
    const OpScope op(prefix_, "l1.backward");
    linear_backward(da1, x, l1_.weight(), partial, l1_.grad);
  }
  const OpScope op(prefix_, "l2.backward");
  linear_backward(da2, x, l2_.weight(), partial, l2_.grad, /*accumulate_dx=*/true);
  tp_.reduce_partial(partial, dx);
}

void ChannelMixer::plan_layer(const ModelConfig& config, int64_t layer, const TensorParallel& tp,
                              const StepShape& s, bool backward, OpPlan& plan) {
  const OpSite site{&plan, fmt::format("layers.{}.channel_mixer.", layer),
                    static_cast<int32_t>(layer), backward ? Pass::Backward : Pass::Forward};
  const int64_t rows = s.batch * s.length, D = config.width, F = tp.block(config.glu_dim),
                e = s.element_bytes;
  const int64_t full = rows * D * e;  // one [B, N, D] activation (TP traffic)
  const int64_t act = rows * F;
  // Weight gradients are accumulated at their own type; under --tp-sp each
  // gather and reduce-scatter also copies the activation (TensorParallel).
  const int64_t g = s.gradient_bytes(), copy = tp.plan_layout_copy(full);
  const MatmulShape in{1, rows, F, D, ProductWeight::GluIn},
      out{1, rows, D, F, ProductWeight::GluOut};
  if (!backward) {
    site.add_matmul("l1.forward", in, (rows * D + F * D) * e + copy, act * e + copy,
                    tp.plan_gather_sequence(full));
    site.add_matmul("l2.forward", in, (rows * D + F * D) * e, act * e);
    site.memory("gate.forward", mul_forward_flops(act), 2 * act * e, act * e);
    site.add_matmul("l3.forward", out, (act + D * F) * e + copy, rows * D * e + copy,
                    tp.plan_reduce_partial(full));
    return;
  }
  // The block's input is gathered again (for l1's and l2's weight
  // gradients) when the block's backward starts, then the output gradient.
  std::vector<PlannedCollective> gathers = tp.plan_gather_sequence(full);
  for (const PlannedCollective& c : tp.plan_gather_sequence(full)) gathers.push_back(c);
  site.add_matmul("l3.backward", out, (rows * D + act + D * F) * e + D * F * g + 2 * copy,
                  act * e + D * F * g + 2 * copy, std::move(gathers));
  site.memory("gate.backward", mul_backward_flops(act), 3 * act * e, 2 * act * e);
  // l2 adds its input gradient to l1's, and the parts are summed after it.
  site.add_matmul("l1.backward", in, (act + rows * D + F * D) * e + F * D * g,
                  rows * D * e + F * D * g);
  site.add_matmul("l2.backward", in, (act + 2 * rows * D + F * D) * e + F * D * g + copy,
                  rows * D * e + F * D * g + copy, tp.plan_reduce_partial(full));
}

}  // namespace linpar
