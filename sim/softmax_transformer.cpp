#include "sim/softmax_transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>

#include "core/error.h"
#include "core/ops/activation.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/embedding.h"
#include "core/ops/srmsnorm.h"
#include "model/tensor_parallel.h"

namespace linpar {

namespace {

using Mlp = SoftmaxTransformerConfig::Mlp;
using Norm = SoftmaxTransformerConfig::Norm;

// Rough per-element FLOPs of elementwise ops the core library has no count
// for (memory-bound: the roofline costs them by their bytes). LayerNorm:
// centre, square, normalise, scale, shift; GeLU in its tanh form.
constexpr int64_t kLayerNormForwardFlops = 5, kLayerNormBackwardFlops = 8;
constexpr int64_t kGeluForwardFlops = 8, kGeluBackwardFlops = 12;
// Unfused softmax per score: scale, mask, max, exp, sum, divide (+ dropout's
// compare and scale); backward: P·(dP − rowsum(P·dP)) (+ applying the mask).
constexpr int64_t kSoftmaxForwardFlops = 6, kSoftmaxBackwardFlops = 4, kDropoutFlops = 2;
// RoPE: x·cos + rotate(x)·sin per element, forward and backward alike.
constexpr int64_t kRopeFlops = 3;

// UserError unless tp divides what tensor parallelism splits.
void validate_tp(const SoftmaxTransformerConfig& c, int tp) {
  if (tp < 1) user_error("tp={} must be at least 1", tp);
  if (c.n_heads % tp != 0) user_error("tp={} does not divide {} heads", tp, c.n_heads);
  if (c.n_kv_heads % tp != 0) user_error("tp={} does not divide {} kv heads", tp, c.n_kv_heads);
  if (c.ffn_dim % tp != 0) user_error("tp={} does not divide ffn-dim {}", tp, c.ffn_dim);
}

int64_t norm_parameters(const SoftmaxTransformerConfig& c) {
  return c.norm == Norm::LayerNorm ? 2 * c.width : c.width;
}

// Output width of the first MLP GEMM: fc1, or gate and up side by side.
int64_t mlp_up_width(const SoftmaxTransformerConfig& c) {
  return c.mlp == Mlp::SwiGlu ? 2 * c.ffn_dim : c.ffn_dim;
}

std::vector<PlannedCollective> both(std::vector<PlannedCollective> a,
                                    const std::vector<PlannedCollective>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

void SoftmaxTransformerConfig::validate() const {
  if (family != "gpt" && family != "llama") {
    user_error("model {}: family '{}' must be gpt or llama", name, family);
  }
  for (const auto& [field, v] : {std::pair<const char*, int64_t>{"n-layers", n_layers},
                                 {"width", width},
                                 {"n-heads", n_heads},
                                 {"n-kv-heads", n_kv_heads},
                                 {"ffn-dim", ffn_dim},
                                 {"vocab-size", vocab_size}}) {
    if (v <= 0) user_error("model {}: {} {} must be positive", name, field, v);
  }
  if (width % n_heads != 0) {
    user_error("model {}: width {} must be divisible by n-heads {}", name, width, n_heads);
  }
  if (n_heads % n_kv_heads != 0) {
    user_error("model {}: n-heads {} must be divisible by n-kv-heads {}", name, n_heads,
               n_kv_heads);
  }
  if (max_positions < 0) {
    user_error("model {}: max-positions {} must be 0 (RoPE) or positive", name, max_positions);
  }
}

int64_t SoftmaxTransformerConfig::padded_vocab_size(int tp) const {
  const int64_t multiple = 128 * static_cast<int64_t>(std::max(tp, 1));
  return (vocab_size + multiple - 1) / multiple * multiple;
}

int64_t SoftmaxTransformerConfig::layer_parameters(int tp) const {
  validate_tp(*this, tp);
  const int64_t h = width, qkv = h + 2 * kv_width(), up = mlp_up_width(*this);
  int64_t n = h * qkv / tp + h * h / tp + h * up / tp + ffn_dim * h / tp;
  // Column-parallel biases are split with their outputs; row-parallel ones
  // are added after the reduction, whole on every rank.
  if (bias) n += qkv / tp + h + up / tp + h;
  return n + 2 * norm_parameters(*this);
}

int64_t SoftmaxTransformerConfig::embedding_parameters(int tp) const {
  validate_tp(*this, tp);
  return padded_vocab_size(tp) / tp * width + max_positions * width;
}

int64_t SoftmaxTransformerConfig::lm_head_parameters(int tp) const {
  validate_tp(*this, tp);
  return tie_embeddings ? 0 : padded_vocab_size(tp) / tp * width;
}

int64_t SoftmaxTransformerConfig::final_norm_parameters() const { return norm_parameters(*this); }

int64_t SoftmaxTransformerConfig::parameter_count() const {
  const int64_t table = vocab_size * width;
  return n_layers * layer_parameters(1) + table + max_positions * width + final_norm_parameters() +
         (tie_embeddings ? 0 : table);
}

int64_t softmax_attention_forward_flops(int64_t batch, int64_t heads, int64_t length,
                                        int64_t head_dim, bool flash_attention) {
  // Q·Kᵀ and P·V: 2·N²·d each per head; causal FlashAttention skips half.
  const int64_t square = 4 * batch * heads * length * length * head_dim;
  return flash_attention ? square / 2 : square;
}

int64_t softmax_attention_backward_flops(int64_t batch, int64_t heads, int64_t length,
                                         int64_t head_dim, bool flash_attention) {
  // FlashAttention: Q·Kᵀ again, dV, dP, dQ, dK: 2.5× its forward. Unfused:
  // dV, dP, dQ, dK from the stored probabilities: 2× forward.
  const int64_t forward =
      softmax_attention_forward_flops(batch, heads, length, head_dim, flash_attention);
  return flash_attention ? forward * 5 / 2 : 2 * forward;
}

void validate_softmax_layout(const SoftmaxTransformerConfig& c, int tp, bool tp_sp, int sp,
                             const StepShape& shape) {
  c.validate();
  validate_tp(c, tp);
  if (sp < 1) user_error("sp={} must be at least 1", sp);
  if (shape.batch < 1 || shape.length < 1 || shape.element_bytes < 1) {
    user_error("micro-batch {}, sequence {} and element bytes {} must be positive", shape.batch,
               shape.length, shape.element_bytes);
  }
  // The fused core's shape is kept in 32 and 16 bits (model/op_plan.h).
  if (shape.length > std::numeric_limits<int32_t>::max()) {
    user_error("sequence of {} tokens: at most {}", shape.length,
               std::numeric_limits<int32_t>::max());
  }
  if (c.head_dim() > std::numeric_limits<int16_t>::max()) {
    user_error("head size {} (width {} / {} heads): at most {}", c.head_dim(), c.width, c.n_heads,
               std::numeric_limits<int16_t>::max());
  }
  if (c.max_positions > 0 && shape.length > c.max_positions) {
    user_error("sequence of {} tokens exceeds max-positions {} (learned positions)", shape.length,
               c.max_positions);
  }
  if (sp > 1) {
    // Ulysses gives each of the tp·sp ranks whole heads, KV heads included.
    if (c.n_heads % (tp * sp) != 0) {
      user_error("tp={} × sp={} does not divide {} heads (Ulysses splits heads over tp·sp)", tp, sp,
                 c.n_heads);
    }
    if (c.n_kv_heads % (tp * sp) != 0) {
      user_error("tp={} × sp={} does not divide {} kv heads (Ulysses splits kv heads over tp·sp)",
                 tp, sp, c.n_kv_heads);
    }
    if (shape.length % sp != 0) {
      user_error("sp={} does not divide the sequence of {} tokens", sp, shape.length);
    }
  }
  if (tp_sp && tp > 1 && (shape.length / sp) % tp != 0) {
    user_error("tp-sp: tp={} does not divide the {} tokens of a sequence shard", tp,
               shape.length / sp);
  }
}

namespace {

// Each layer's forward ops again (pass Recompute) before its first backward
// op: all of them (full) or the attention core's (selective).
OpPlan with_recomputation(OpPlan&& plan, Recompute recompute) {
  if (recompute == Recompute::None) return std::move(plan);
  std::map<int32_t, std::vector<const PlannedOp*>> forward;
  OpPlan out;
  out.reserve(plan.ops().size() * 2);
  int32_t recomputed = kStepLayer;
  for (const PlannedOp& op : plan.ops()) {
    if (op.layer >= 0 && op.pass == Pass::Forward) forward[op.layer].push_back(&op);
    if (op.layer >= 0 && op.pass == Pass::Backward && op.layer != recomputed) {
      recomputed = op.layer;
      for (const PlannedOp* again : forward[op.layer]) {
        if (recompute == Recompute::Selective && again->kind != OpKind::SoftmaxAttention) continue;
        PlannedOp copy = *again;
        copy.pass = Pass::Recompute;
        out.add(std::move(copy));
      }
    }
    out.add(op);
  }
  return out;
}

}  // namespace

OpPlan plan_softmax_transformer(const SoftmaxTransformerConfig& c, int tp_size, bool tp_sp, int sp,
                                const StepShape& s, Recompute recompute) {
  validate_softmax_layout(c, tp_size, tp_sp, sp, s);
  const TensorParallel tp{nullptr, 0, tp_size, tp_sp};
  OpPlan plan;
  plan.reserve(static_cast<size_t>(8 + 40 * c.n_layers));  // about 36 ops a layer (as plan_model)
  const int64_t e = s.element_bytes, B = s.batch, N = s.length, h = c.width, d = c.head_dim();
  // Tokens through the GEMMs (the TP group's whole shard of the sequence) and
  // on this rank's residual stream (its sequence shard with tp_sp).
  const int64_t rows = B * (N / sp), stream = B * tp.stream_length(N / sp);
  // This rank's widths: its heads, KV heads, MLP columns and vocabulary.
  const int64_t q_width = c.n_heads / tp_size * d, kv_width = c.n_kv_heads / tp_size * d;
  const int64_t qkv_width = q_width + 2 * kv_width;
  const int64_t F = c.ffn_dim / tp_size, up_width = mlp_up_width(c) / tp_size;
  const int64_t V = c.padded_vocab_size(tp_size) / tp_size;
  // The attention core: whole sequence, heads split over tp·sp.
  const int64_t core_heads = c.n_heads / (tp_size * sp),
                core_kv_heads = c.n_kv_heads / (tp_size * sp);
  const bool swiglu = c.mlp == Mlp::SwiGlu, layer_norm = c.norm == Norm::LayerNorm;
  const bool rope = c.max_positions == 0, positions = !rope;
  const int64_t norm_bytes = norm_parameters(c) * e;
  const int64_t mask_bytes = c.dropout ? stream * h : 0;  // one byte per element
  auto bias_bytes = [&](int64_t n) { return c.bias ? n * e : 0; };
  // TP traffic: one [B, N/sp, h] activation; per-row statistics in f32.
  const int64_t full = rows * h * e, stats = rows * std::max<int64_t>(e, 4);

  // Every op is added at the layer and pass being planned (set below).
  OpSite at{&plan, "", kEmbeddingLayer, Pass::Forward};
  auto op = [&](const std::string& name, int64_t flops, int64_t read_bytes, int64_t written_bytes,
                std::vector<PlannedCollective> collectives = {}) {
    at.memory(name, flops, read_bytes, written_bytes, std::move(collectives));
  };
  // A product [rows, k]·[k, n] (batch of them for the unfused core).
  // A product batch × [m, k]·[k, n]. The output projection and the LM head
  // take TransNormerLLM's out_proj and lm_head rates from a measured profile
  // (the same kind of [rows, h]·[h, n] product, interpolated by FLOPs); the
  // other products the roofline.
  auto product = [&](const std::string& name, MatmulShape shape, int64_t read_bytes,
                     int64_t written_bytes, std::vector<PlannedCollective> collectives = {}) {
    at.add_matmul(name, shape, read_bytes, written_bytes, std::move(collectives));
  };
  const auto Other = ProductWeight::Other;
  // A bias's gradient is its output gradient summed over the rows: a
  // reduction kernel of its own (autograd's sum for the QKV product's addmm
  // and for the biases Megatron adds in its fused bias-GeLU and
  // bias-dropout-add; 97 such kernels in a PyTorch GPT's step:
  // docs/validation.md). `width` columns over `n_rows` rows.
  auto bias_backward = [&](const std::string& name, int64_t n_rows, int64_t width) {
    if (c.bias) op(name, n_rows * width, n_rows * width * e, width * e);
  };
  // Norms keep their per-row statistics (mean and rstd, or rstd) in f32.
  const int64_t norm_stats = stream * (layer_norm ? 8 : 4);
  auto norm_forward = [&](const std::string& name) {
    const int64_t n = stream * h;
    op(name + ".forward",
       layer_norm ? kLayerNormForwardFlops * n : srmsnorm_forward_flops(stream, h),
       n * e + norm_bytes, n * e + norm_stats);
  };
  auto norm_backward = [&](const std::string& name) {
    const int64_t n = stream * h;
    op(name + ".backward",
       layer_norm ? kLayerNormBackwardFlops * n : srmsnorm_backward_flops(stream, h),
       2 * n * e + norm_bytes + norm_stats, n * e + norm_bytes);
  };
  // x + dropout(f(x)) (Megatron's fused bias-dropout-add). Backward is two
  // kernels in Megatron-LM (and in a PyTorch GPT: docs/validation.md): with
  // dropout, its backward on the branch (the gradient and the mask read, the
  // branch's gradient written) at the block's end; and autograd's sum of
  // the branch's and the skip's gradients where x forks, after the norm's
  // backward (two read, one written).
  auto residual_forward = [&](const std::string& name) {
    const int64_t n = stream * h;
    op(name + ".forward", c.dropout ? (1 + kDropoutFlops) * n : n, 2 * n * e, n * e + mask_bytes);
  };
  auto residual_backward = [&](const std::string& name) {
    const int64_t n = stream * h;
    op(name + ".backward", c.dropout ? (1 + kDropoutFlops) * n : n,
       2 * n * e + (c.dropout ? n * e + mask_bytes : 0), n * e + (c.dropout ? n * e : 0));
  };

  // Ulysses all-to-alls: each tensor's buffer on this rank.
  const int64_t q_bytes = rows * q_width * e, kv_bytes = rows * kv_width * e;
  const std::vector<PlannedCollective> qkv_all_to_all = {
      {CollectiveKind::AllToAll, CommGroup::Sp, q_bytes},
      {CollectiveKind::AllToAll, CommGroup::Sp, kv_bytes},
      {CollectiveKind::AllToAll, CommGroup::Sp, kv_bytes}};
  const std::vector<PlannedCollective> out_all_to_all = {
      {CollectiveKind::AllToAll, CommGroup::Sp, q_bytes}};

  // The attention core on [B, core_heads, N, d] (q, o) and [B, core_kv_heads, N, d] (k, v).
  const int64_t q_core = B * core_heads * N * d * e, kv_core = B * core_kv_heads * N * d * e;
  const int64_t lse = B * core_heads * N * 4;     // FlashAttention's logsumexp, f32
  const int64_t scores = B * core_heads * N * N;  // unfused: one N×N per head
  auto core = [&](const std::string& prefix, bool backward) {
    const int64_t forward_flops =
        softmax_attention_forward_flops(B, core_heads, N, d, c.flash_attention);
    const int64_t backward_flops =
        softmax_attention_backward_flops(B, core_heads, N, d, c.flash_attention);
    if (c.flash_attention) {
      // Its rate depends on the length, head size and dropout (sim/op_costs.h).
      const CoreShape shape{B * core_heads * N * N / 2, static_cast<int32_t>(N),
                            static_cast<int16_t>(d), c.dropout, backward};
      if (!backward) {
        at.add(OpKind::SoftmaxAttention, prefix + "attention.core.forward", forward_flops,
               q_core + 2 * kv_core, q_core + lse)
            .core = shape;
      } else {  // reads q, k, v, o, dO and the logsumexp; writes dq, dk, dv
        at.add(OpKind::SoftmaxAttention, prefix + "attention.core.backward", backward_flops,
               3 * q_core + 2 * kv_core + lse, q_core + 2 * kv_core)
            .core = shape;
      }
      return;
    }
    // Unfused: scores = Q·Kᵀ, P = dropout(softmax(mask(scores))), O = P·V,
    // each N×N tensor through memory; the two products do half of the FLOPs
    // each. Megatron-LM runs the softmax as its fused scale-mask-softmax
    // kernel and the dropout after it as torch's own kernel
    // (ParallelAttention: scale_mask_softmax, then attention_dropout), so
    // with dropout P is written, read back, and dropped P and the mask
    // (a byte each) written; in backward dropout's gradient is written and
    // read back by the softmax's.
    const int64_t dropout_read = c.dropout ? scores * e : 0;              // P, again
    const int64_t dropout_written = c.dropout ? scores + scores * e : 0;  // mask, dropped P
    const int64_t softmax_flops = (kSoftmaxForwardFlops + (c.dropout ? kDropoutFlops : 0)) * scores;
    if (!backward) {
      product(prefix + "attention.scores.forward", {B * core_heads, N, N, d, Other},
              q_core + kv_core, scores * e);
      op(prefix + "attention.softmax.forward", softmax_flops, scores * e + dropout_read,
         scores * e + dropout_written);
      product(prefix + "attention.context.forward", {B * core_heads, N, d, N, Other},
              scores * e + kv_core, q_core);
      return;
    }
    // Backward is two products per forward product, each reading its
    // operands: dP = dO·Vᵀ and dV = Pᵀ·dO read dO twice; dQ = dS·K and
    // dK = dSᵀ·Q read the N×N gradient twice (a PyTorch GPT on an H200
    // takes 0.43 ms for the latter at Megatron 1.7B's shape, where one read
    // would be 0.25: docs/validation.md).
    product(prefix + "attention.context.backward", {B * core_heads, N, d, N, Other},
            2 * q_core + scores * e + kv_core,
            scores * e + kv_core);  // dP and dV
    // Reads dP and P (+ the mask and dropout's gradient); writes dS (+ dropout's gradient).
    op(prefix + "attention.softmax.backward",
       (kSoftmaxBackwardFlops + (c.dropout ? 1 : 0)) * scores,  // (+ the mask)
       2 * scores * e + (c.dropout ? scores + scores * e : 0),
       scores * e + (c.dropout ? scores * e : 0));
    product(prefix + "attention.scores.backward", {B * core_heads, N, N, d, Other},
            2 * scores * e + q_core + kv_core,
            q_core + kv_core);  // dQ and dK
  };

  const int64_t embed_n = rows * h;
  std::vector<PlannedCollective> softmax_stats;  // max, sum of exponentials, target logit
  for (int i = 0; i < 3; ++i) softmax_stats = both(softmax_stats, tp.plan_all_reduce(stats));

  // Vocabulary-parallel lookup (+ learned positions): the partial rows summed.
  op("embedding.forward", embedding_forward_flops(rows, h) + (positions ? embed_n : 0),
     (positions ? 2 : 1) * embed_n * e, embed_n * e, tp.plan_reduce_partial(full));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("layers.{}.", l);
    at.layer = static_cast<int32_t>(l);
    norm_forward(p + "attention_norm");
    product(p + "attention.qkv_proj.forward", {1, rows, qkv_width, h, Other},
            (rows * h + h * qkv_width) * e + bias_bytes(qkv_width), rows * qkv_width * e,
            tp.plan_gather_sequence(full));
    const int64_t rope_n = rows * (q_width + kv_width);
    if (rope) op(p + "attention.rope.forward", kRopeFlops * rope_n, rope_n * e, rope_n * e);
    if (sp > 1) {
      op(p + "attention.to_heads.forward", 0, rows * qkv_width * e, rows * qkv_width * e,
         qkv_all_to_all);
    }
    core(p, false);
    // The core's output [B, heads, N, d] back to the sequence-first [N, B,
    // heads·d] the output projection reads: Megatron's
    // permute(...).contiguous(), a copy (FlashAttention's output the same).
    op(p + "attention.merge_heads.forward", 0, rows * q_width * e, rows * q_width * e);
    if (sp > 1) op(p + "attention.to_sequence.forward", 0, q_bytes, q_bytes, out_all_to_all);
    product(p + "attention.out_proj.forward", {1, rows, h, q_width, ProductWeight::OutProj},
            (rows * q_width + q_width * h) * e + bias_bytes(h), rows * h * e,
            tp.plan_reduce_partial(full));
    residual_forward(p + "attention_residual");
    norm_forward(p + "mlp_norm");
    product(p + (swiglu ? "mlp.gate_up.forward" : "mlp.fc1.forward"), {1, rows, up_width, h, Other},
            (rows * h + h * up_width) * e + bias_bytes(up_width), rows * up_width * e,
            tp.plan_gather_sequence(full));
    if (swiglu) {
      op(p + "mlp.swiglu.forward", silu_forward_flops(rows * F) + mul_forward_flops(rows * F),
         2 * rows * F * e, rows * F * e);
    } else {
      op(p + "mlp.gelu.forward", kGeluForwardFlops * rows * F, rows * F * e, rows * F * e);
    }
    product(p + (swiglu ? "mlp.down.forward" : "mlp.fc2.forward"), {1, rows, h, F, Other},
            (rows * F + F * h) * e + bias_bytes(h), rows * h * e, tp.plan_reduce_partial(full));
    residual_forward(p + "mlp_residual");
  }
  at.layer = kHeadLayer;
  norm_forward("final_norm");
  product("lm_head.forward", {1, rows, V, h, ProductWeight::LmHead}, (rows * h + V * h) * e,
          rows * V * e, tp.plan_gather_sequence(full));
  op("cross_entropy.forward", cross_entropy_forward_flops(rows, V), rows * V * e, rows * e,
     softmax_stats);
  at.pass = Pass::Backward;
  op("cross_entropy.backward", cross_entropy_backward_flops(rows, V), rows * V * e, rows * V * e);
  product("lm_head.backward", {1, rows, V, h, ProductWeight::LmHead},
          (rows * V + rows * h + V * h) * e, (rows * h + V * h) * e,
          both(tp.plan_gather_sequence(full), tp.plan_reduce_partial(full)));
  norm_backward("final_norm");
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const std::string p = fmt::format("layers.{}.", l);
    at.layer = static_cast<int32_t>(l);
    // Row-parallel down/fc2: the output gradient is gathered (tp_sp); no reduction.
    // Row-parallel biases are added on the residual stream (this rank's
    // sequence shard with tp_sp); column-parallel ones on the product's rows.
    bias_backward(p + (swiglu ? "mlp.down_bias.backward" : "mlp.fc2_bias.backward"), stream, h);
    product(p + (swiglu ? "mlp.down.backward" : "mlp.fc2.backward"), {1, rows, h, F, Other},
            (rows * h + rows * F + F * h) * e, (rows * F + F * h) * e + bias_bytes(h),
            tp.plan_gather_sequence(full));
    if (swiglu) {
      op(p + "mlp.swiglu.backward", silu_backward_flops(rows * F) + mul_backward_flops(rows * F),
         3 * rows * F * e, 2 * rows * F * e);
    } else {
      op(p + "mlp.gelu.backward", kGeluBackwardFlops * rows * F, 2 * rows * F * e, rows * F * e);
    }
    bias_backward(p + (swiglu ? "mlp.gate_up_bias.backward" : "mlp.fc1_bias.backward"), rows,
                  up_width);
    // Column-parallel gate_up/fc1: the input is gathered again for the weight
    // gradient and the input gradient's parts are summed.
    product(p + (swiglu ? "mlp.gate_up.backward" : "mlp.fc1.backward"),
            {1, rows, up_width, h, Other}, (rows * up_width + rows * h + h * up_width) * e,
            (rows * h + h * up_width) * e + bias_bytes(up_width),
            both(tp.plan_gather_sequence(full), tp.plan_reduce_partial(full)));
    norm_backward(p + "mlp_norm");
    residual_backward(p + "mlp_residual");
    bias_backward(p + "attention.out_bias.backward", stream, h);
    product(p + "attention.out_proj.backward", {1, rows, h, q_width, ProductWeight::OutProj},
            (rows * h + rows * q_width + q_width * h) * e,
            (rows * q_width + q_width * h) * e + bias_bytes(h), tp.plan_gather_sequence(full));
    if (sp > 1) op(p + "attention.to_heads.backward", 0, q_bytes, q_bytes, out_all_to_all);
    core(p, true);
    if (sp > 1) {
      op(p + "attention.to_sequence.backward", 0, rows * qkv_width * e, rows * qkv_width * e,
         qkv_all_to_all);
    }
    const int64_t rope_n = rows * (q_width + kv_width);
    if (rope) op(p + "attention.rope.backward", kRopeFlops * rope_n, rope_n * e, rope_n * e);
    // Q, K and V are views of the QKV product (Megatron's
    // split_tensor_along_last_dim); their gradients are concatenated back
    // into one tensor for the product's backward: a copy.
    op(p + "attention.split_qkv.backward", 0, rows * qkv_width * e, rows * qkv_width * e);
    bias_backward(p + "attention.qkv_bias.backward", rows, qkv_width);
    product(p + "attention.qkv_proj.backward", {1, rows, qkv_width, h, Other},
            (rows * qkv_width + rows * h + h * qkv_width) * e,
            (rows * h + h * qkv_width) * e + bias_bytes(qkv_width),
            both(tp.plan_gather_sequence(full), tp.plan_reduce_partial(full)));
    norm_backward(p + "attention_norm");
    residual_backward(p + "attention_residual");
  }
  at.layer = kEmbeddingLayer;
  op("embedding.backward", embedding_backward_flops(rows, h) + (positions ? embed_n : 0),
     embed_n * e, (positions ? 2 : 1) * embed_n * e, tp.plan_gather_sequence(full));
  return with_recomputation(std::move(plan), recompute);
}

// Korthikanti et al. 2022 §4 count, generalised to any element size (they
// take 2 bytes; dropout masks are 1 byte per element) and to the Llama
// layer. Per layer, for s tokens of b samples on one rank:
//
//   GPT (LayerNorm, GeLU, F = 4h, dropout), 2-byte activations:
//     norm inputs 4sbh, norm outputs (QKV and fc1 inputs) 4sbh, dropout
//     masks 2sbh                                     → 10sbh (the TP-replicated part)
//     Q, K, V 6sbh, attention output 2sbh, GeLU input 8sbh, fc2 input 8sbh
//                                                    → 24sbh (split by TP)
//     unfused core: softmax output 2as²b, its dropout mask as²b and
//     output 2as²b                                   → 5as²b (split by TP)
//   giving their sbh(34 + 5as/h) with no parallelism, sbh(10 + 24/t + 5as/(ht))
//   with TP and sbh(34 + 5as/h)/t with TP and sequence parallelism.
//
//   Llama (RMSNorm, SwiGLU of width F, GQA with h_kv = kv heads × d, RoPE,
//   no dropout), 2-byte activations:
//     norm inputs 4sbh, norm outputs 4sbh                         → 8sbh replicated
//     Q 2sbh, K and V 4sb·h_kv (after RoPE: RoPE's backward needs
//     nothing kept), attention output 2sbh, gate and up 4sbF, SwiGLU
//     output (down's input) 2sbF     → (4 + 4h_kv/h + 6F/h)sbh split by TP
//   giving sbh(12 + 4h_kv/h + 6F/h) with no parallelism: 32.125sbh for
//   Llama-2-7B, 34sbh for Llama-3-8B.
//
// Which we implement for the N² term: with flash_attention (the default) no
// N² tensor exists to keep — FlashAttention recomputes the scores in its
// backward and regenerates the dropout mask from the RNG state, and Megatron
// with flash attention stores none either — so None and Selective give the
// same count, Korthikanti's selective row. With flash_attention = false (the
// unfused core of the 2021-2022 Megatron runs) None keeps the 5as²b term
// (without dropout only the softmax output, 2as²b) and Selective recomputes
// it, exactly as their Table 2. Full keeps the layer input only:
// 2sbh, or 2sbh/t with sequence parallelism. Per-row statistics (norms'
// mean/rstd, FlashAttention's logsumexp) are not counted, as Korthikanti
// does not: about 4/(34·d) of the rest.
//
// Ulysses (sp > 1) divides the sequence of everything by sp; the core's
// tensors [b, a/(t·sp), s, s] hold the same fraction.
int64_t layer_activation_bytes(const SoftmaxTransformerConfig& c, int tp, bool tp_sp, int sp,
                               const StepShape& s, Recompute recompute) {
  validate_softmax_layout(c, tp, tp_sp, sp, s);
  const int64_t e = s.element_bytes, B = s.batch, N = s.length, h = c.width, d = c.head_dim();
  const int64_t rows = B * (N / sp);
  const int64_t stream = tp_sp && tp > 1 ? rows / tp : rows;
  if (recompute == Recompute::Full) return stream * h * e;
  const int64_t q_width = c.n_heads / tp * d, kv_width = c.n_kv_heads / tp * d;
  const int64_t F = c.ffn_dim / tp;
  int64_t bytes = 0;
  // On the residual stream's layout: replicated over TP, or its shard with tp_sp.
  bytes += 2 * stream * h * e;             // the two norms' inputs
  bytes += 2 * stream * h * e;             // their outputs: the QKV and MLP inputs
  if (c.dropout) bytes += 2 * stream * h;  // the two residual dropout masks
  // Split by TP: heads and MLP columns.
  bytes += rows * (q_width + 2 * kv_width) * e;            // q, k, v as the core reads them
  bytes += rows * q_width * e;                             // the core's output: out_proj's input
  bytes += rows * F * e * (c.mlp == Mlp::SwiGlu ? 3 : 2);  // gate, up, SwiGLU out / GeLU in, out
  if (!c.flash_attention && recompute == Recompute::None) {
    const int64_t scores = B * (c.n_heads / (tp * sp)) * N * N;
    bytes += scores * e;                          // softmax output
    if (c.dropout) bytes += scores + scores * e;  // its dropout mask and output
  }
  return bytes;
}

}  // namespace linpar
