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
    const OpScope op(prefix_, "l1.forward", ProductWeight::GluIn);
    x = tp_.gather_sequence(x_stream);
    linear_forward(x, l1_.weight(), c.a1);
  }
  {
    const OpScope op(prefix_, "l2.forward", ProductWeight::GluIn);
    linear_forward(x, l2_.weight(), c.a2);
  }
  {
    const OpScope op(prefix_, "gate.forward");
    mul_forward(c.a1, c.a2, c.gated);
  }
  // Recomputation rebuilds the cache only: l3's product feeds nothing backward needs.
  if (!out.defined()) return;
  // Row-parallel l3: sum the partial outputs (into the stream's layout).
  const OpScope op(prefix_, "l3.forward", ProductWeight::GluOut);
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
    const OpScope op(prefix_, "l3.backward", ProductWeight::GluOut);
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
    const OpScope op(prefix_, "l1.backward", ProductWeight::GluIn);
    linear_backward(da1, x, l1_.weight(), partial, l1_.grad);
  }
  const OpScope op(prefix_, "l2.backward", ProductWeight::GluIn);
  linear_backward(da2, x, l2_.weight(), partial, l2_.grad, /*accumulate_dx=*/true);
  tp_.reduce_partial(partial, dx);
}

}  // namespace linpar
