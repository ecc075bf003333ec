// GPT/Llama softmax transformers: preset parameter counts against the
// published ones, the op plan's FLOPs against Narayanan et al. 2021 eq. (3),
// TP and Ulysses collectives by hand, bad layouts, and the activation bytes
// against Korthikanti et al. 2022 Table 2.
#include "sim/softmax_transformer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "model/config.h"

namespace linpar {

namespace {

using Mlp = SoftmaxTransformerConfig::Mlp;
using Norm = SoftmaxTransformerConfig::Norm;

// The message of the UserError `f` throws ("" when it throws none).
template <typename F>
std::string user_error_of(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// GEMMs and the attention core: the FLOPs eq. (3) counts.
bool model_flop_op(const std::string& name) {
  for (const char* part :
       {"qkv_proj.", "out_proj.", "mlp.fc1.", "mlp.fc2.", "mlp.gate_up.", "mlp.down.", "lm_head.",
        "attention.core.", "attention.scores.", "attention.context."}) {
    if (contains(name, part)) return true;
  }
  return false;
}

int64_t model_flops(const OpPlan& plan) {
  int64_t total = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (model_flop_op(op.name)) total += op.flops;
  }
  return total;
}

const PlannedOp& find_op(const OpPlan& plan, const std::string& name) {
  for (const PlannedOp& op : plan.ops()) {
    if (op.name == name) return op;
  }
  ADD_FAILURE() << "no op " << name;
  static const PlannedOp none;
  return none;
}

// A small GPT layer: h = 64, 4 heads of 16, fc 4h, vocabulary 256.
SoftmaxTransformerConfig small_gpt(int64_t layers = 2) {
  SoftmaxTransformerConfig c;
  c.name = "small-gpt";
  c.family = "gpt";
  c.n_layers = layers;
  c.width = 64;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.ffn_dim = 256;
  c.vocab_size = 256;
  c.max_positions = 128;
  c.dropout = true;
  return c;
}

// A small Llama layer: h = 128, 8 heads of 16, 4 KV heads (h_kv = 64), F = 320.
SoftmaxTransformerConfig small_llama(int64_t layers = 2) {
  SoftmaxTransformerConfig c;
  c.name = "small-llama";
  c.family = "llama";
  c.n_layers = layers;
  c.width = 128;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.ffn_dim = 320;
  c.vocab_size = 256;
  c.mlp = Mlp::SwiGlu;
  c.norm = Norm::RMSNorm;
  c.tie_embeddings = false;
  c.bias = false;
  c.max_positions = 0;
  c.dropout = false;
  return c;
}

}  // namespace

TEST(SoftmaxPresets, CountsMatchThePublishedOnes) {
  int checked = 0;
  for (const SoftmaxTransformerConfig& c : softmax_presets()) {
    EXPECT_NO_THROW(c.validate()) << c.name;
    ASSERT_GT(c.published_parameters, 0) << c.name;
    EXPECT_FALSE(c.source.empty()) << c.name;
    // The sources print one decimal of billions (Megatron's 1.7B is its own
    // formula's 1.652B): 1.5% plus half that last digit.
    const double computed = static_cast<double>(c.parameter_count());
    EXPECT_NEAR(computed, c.published_parameters, 0.015 * c.published_parameters + 0.05e9)
        << c.name << " " << computed;
    ++checked;
  }
  EXPECT_EQ(checked, 21);  // 5 GPT-3, 10 Megatron, 3 Llama 2, 3 Llama 3
}

TEST(SoftmaxPresets, ExactCounts) {
  // GPT-3 175B: 96·(12h² + 13h) + (50257 + 2048)·h + 2h (final LayerNorm).
  EXPECT_EQ(softmax_preset("gpt3-175b").parameter_count(), 174'604'259'328);
  // Megatron: their P = 12lh² + 13lh + (V + s)h, which leaves out the final
  // LayerNorm's 2h.
  for (const SoftmaxTransformerConfig& c : softmax_presets()) {
    if (!c.name.starts_with("megatron-")) continue;
    const int64_t l = c.n_layers, h = c.width;
    EXPECT_EQ(c.parameter_count() - 2 * h, 12 * l * h * h + 13 * l * h + (51200 + 2048) * h)
        << c.name;
  }
  EXPECT_NEAR(softmax_preset("megatron-1t").parameter_count() / 1e9, 1008.0, 0.05);
  // The released Llama weights' element counts.
  EXPECT_EQ(softmax_preset("llama2-7b").parameter_count(), 6'738'415'616);
  EXPECT_EQ(softmax_preset("llama2-70b").parameter_count(), 68'976'648'192);
  EXPECT_EQ(softmax_preset("llama3-8b").parameter_count(), 8'030'261'248);
  EXPECT_EQ(softmax_preset("llama3-405b").parameter_count(), 405'853'388'800);
}

TEST(SoftmaxPresets, NamesAreUniqueAndApartFromTheTransNormers) {
  std::set<std::string> names;
  for (const SoftmaxTransformerConfig& c : softmax_presets()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
  }
  for (const PresetInfo& p : model_presets()) {
    EXPECT_EQ(names.count(p.config.name), 0u) << p.config.name;
    EXPECT_FALSE(find_softmax_preset(p.config.name).has_value()) << p.config.name;
  }
  ASSERT_TRUE(find_softmax_preset("llama3-70b").has_value());
  EXPECT_EQ(find_softmax_preset("llama3-70b")->n_kv_heads, 8);
  const std::string message = user_error_of([] { softmax_preset("gpt5"); });
  EXPECT_TRUE(contains(message, "--model gpt5: unknown")) << message;
  EXPECT_TRUE(contains(message, "gpt3-175b") && contains(message, "megatron-1t") &&
              contains(message, "llama3-405b"))
      << message;
}

TEST(SoftmaxConfig, ValidateNamesTheFieldAndTheRule) {
  SoftmaxTransformerConfig c = small_gpt();
  c.width = 66;
  EXPECT_TRUE(
      contains(user_error_of([&] { c.validate(); }), "width 66 must be divisible by n-heads 4"));
  c = small_llama();
  c.n_kv_heads = 3;
  EXPECT_TRUE(contains(user_error_of([&] { c.validate(); }),
                       "n-heads 8 must be divisible by n-kv-heads 3"));
  c = small_gpt();
  c.family = "bert";
  EXPECT_TRUE(contains(user_error_of([&] { c.validate(); }), "family 'bert' must be gpt or llama"));
  c = small_gpt();
  c.ffn_dim = 0;
  EXPECT_TRUE(contains(user_error_of([&] { c.validate(); }), "ffn-dim 0 must be positive"));
  c = small_gpt();
  c.max_positions = -1;
  EXPECT_TRUE(contains(user_error_of([&] { c.validate(); }), "max-positions -1"));
}

TEST(SoftmaxParameters, MegatronShardingByHand) {
  // GPT-3 175B on 8 TP ranks: QKV (3h² + 3h) and fc1 (4h² + 4h) split,
  // out_proj and fc2 weights split with their biases (h each) whole, the two
  // LayerNorms (2h each) whole.
  const SoftmaxTransformerConfig g = softmax_preset("gpt3-175b");
  const int64_t h = g.width;
  EXPECT_EQ(g.layer_parameters(8), (3 * h * h + 3 * h) / 8 + h * h / 8 + h +
                                       (4 * h * h + 4 * h) / 8 + 4 * h * h / 8 + h + 4 * h);
  EXPECT_EQ(g.layer_parameters(1), 12 * h * h + 13 * h);
  // The vocabulary padded to a multiple of 128·tp: 50257 → 50304 (tp = 1), 51200 (tp = 8).
  EXPECT_EQ(g.padded_vocab_size(1), 50304);
  EXPECT_EQ(g.padded_vocab_size(8), 51200);
  EXPECT_EQ(g.embedding_parameters(8), 51200 / 8 * h + 2048 * h);
  EXPECT_EQ(g.lm_head_parameters(8), 0);  // tied
  // Llama 3 8B on 8 ranks: 8 KV heads → one each; no biases; RMSNorms whole.
  const SoftmaxTransformerConfig l = softmax_preset("llama3-8b");
  const int64_t lh = l.width, kv = l.kv_width(), F = l.ffn_dim;
  EXPECT_EQ(kv, 1024);
  EXPECT_EQ(l.layer_parameters(8), (lh * (lh + 2 * kv) + lh * lh + 3 * lh * F) / 8 + 2 * lh);
  EXPECT_EQ(l.padded_vocab_size(2), 128256);
  EXPECT_EQ(l.padded_vocab_size(8), 129024);
  EXPECT_EQ(l.embedding_parameters(2), 128256 / 2 * lh);
  EXPECT_EQ(l.lm_head_parameters(2), 128256 / 2 * lh);
  // Replicated parts aside, the shards add up to the whole layer.
  for (int tp : {1, 2, 4, 8}) {
    const int64_t replicated = 2 * lh;
    EXPECT_EQ(tp * (l.layer_parameters(tp) - replicated) + replicated, l.layer_parameters(1)) << tp;
  }
  EXPECT_TRUE(
      contains(user_error_of([&] { l.layer_parameters(16); }), "tp=16 does not divide 8 kv heads"));
}

TEST(SoftmaxPlan, OpsInExecutionOrder) {
  SoftmaxTransformerConfig c = small_gpt(1);
  const OpPlan gpt = plan_softmax_transformer(c, 1, false, 1, StepShape{1, 16, 2});
  std::vector<std::string> names;
  for (const PlannedOp& op : gpt.ops()) names.push_back(op.name);
  const std::vector<std::string> expected = {
      "embedding.forward",
      "layers.0.attention_norm.forward",
      "layers.0.attention.qkv_proj.forward",
      "layers.0.attention.core.forward",
      "layers.0.attention.merge_heads.forward",
      "layers.0.attention.out_proj.forward",
      "layers.0.attention_residual.forward",
      "layers.0.mlp_norm.forward",
      "layers.0.mlp.fc1.forward",
      "layers.0.mlp.gelu.forward",
      "layers.0.mlp.fc2.forward",
      "layers.0.mlp_residual.forward",
      "final_norm.forward",
      "lm_head.forward",
      "cross_entropy.forward",
      "cross_entropy.backward",
      "lm_head.backward",
      "final_norm.backward",
      "layers.0.mlp.fc2_bias.backward",
      "layers.0.mlp.fc2.backward",
      "layers.0.mlp.gelu.backward",
      "layers.0.mlp.fc1_bias.backward",
      "layers.0.mlp.fc1.backward",
      "layers.0.mlp_norm.backward",
      "layers.0.mlp_residual.backward",
      "layers.0.attention.out_bias.backward",
      "layers.0.attention.out_proj.backward",
      "layers.0.attention.core.backward",
      "layers.0.attention.split_qkv.backward",
      "layers.0.attention.qkv_bias.backward",
      "layers.0.attention.qkv_proj.backward",
      "layers.0.attention_norm.backward",
      "layers.0.attention_residual.backward",
      "embedding.backward",
  };
  EXPECT_EQ(names, expected);

  // Llama: RoPE, gate_up / SwiGLU / down; Ulysses' all-to-alls around the
  // core; the unfused core in three ops.
  SoftmaxTransformerConfig l = small_llama(1);
  l.flash_attention = false;
  const OpPlan llama = plan_softmax_transformer(l, 1, false, 2, StepShape{1, 16, 2});
  names.clear();
  for (const PlannedOp& op : llama.ops()) {
    if (op.name.starts_with("layers.0.attention.") || op.name.starts_with("layers.0.mlp.")) {
      names.push_back(op.name.substr(9));
    }
  }
  const std::vector<std::string> expected_llama = {
      "attention.qkv_proj.forward",
      "attention.rope.forward",
      "attention.to_heads.forward",
      "attention.scores.forward",
      "attention.softmax.forward",
      "attention.context.forward",
      "attention.merge_heads.forward",
      "attention.to_sequence.forward",
      "attention.out_proj.forward",
      "mlp.gate_up.forward",
      "mlp.swiglu.forward",
      "mlp.down.forward",
      "mlp.down.backward",
      "mlp.swiglu.backward",
      "mlp.gate_up.backward",
      "attention.out_proj.backward",
      "attention.to_heads.backward",
      "attention.context.backward",
      "attention.softmax.backward",
      "attention.scores.backward",
      "attention.to_sequence.backward",
      "attention.rope.backward",
      "attention.split_qkv.backward",
      "attention.qkv_proj.backward",
  };
  EXPECT_EQ(names, expected_llama);
}

// Narayanan et al. 2021 eq. (3) counts 96·B·s·l·h²·(1 + s/(6h) + V/(16lh)):
// per layer a forward of 24Bsh² (GEMMs) + 4Bs²h (Q·Kᵀ and P·V over the full
// square), its backward twice that, and one more forward for the full
// recomputation of every layer; the LM head 6BshV (never recomputed).
// Without recomputation the layers give 3× instead of 4× their forward:
// 72·B·s·l·h²·(1 + s/(6h) + V/(12lh)) (not 96/(4/3) of the whole: the logit
// term is not recomputed). The unfused core counts attention as the paper
// does, so its plan equals that exactly. The FlashAttention core counts the
// causal half forward (2Bs²h) and 2.5× that backward: 7Bs²h per layer
// instead of 12Bs²h, i.e. s/(6h) becomes (7/12)·s/(6h) = 7s/(72h).
TEST(SoftmaxPlan, GptFlopsEqualNarayananEquation3WithoutRecompute) {
  for (const char* name : {"megatron-1.7b", "megatron-18b", "megatron-145b", "megatron-1t"}) {
    SoftmaxTransformerConfig c = softmax_preset(name);
    const double B = 2, s = 2048, l = static_cast<double>(c.n_layers),
                 h = static_cast<double>(c.width), V = 51200;
    ASSERT_EQ(c.padded_vocab_size(1), 51200);
    const StepShape shape{2, 2048, 2};
    c.flash_attention = false;
    const double paper = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
    const double unfused =
        static_cast<double>(model_flops(plan_softmax_transformer(c, 1, false, 1, shape)));
    EXPECT_NEAR(unfused / paper, 1.0, 1e-9) << name;
    c.flash_attention = true;
    const double causal = 72 * B * s * l * h * h * (1 + 7 * s / (72 * h) + V / (12 * l * h));
    const double flash =
        static_cast<double>(model_flops(plan_softmax_transformer(c, 1, false, 1, shape)));
    EXPECT_NEAR(flash / causal, 1.0, 1e-9) << name;
  }
  // The GEMM part is exact in integers: 72·B·s·l·h² + 6·B·s·h·V.
  const SoftmaxTransformerConfig c = softmax_preset("megatron-1t");
  const OpPlan plan = plan_softmax_transformer(c, 1, false, 1, StepShape{1, 2048, 2});
  int64_t gemm = 0, core = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (!model_flop_op(op.name)) continue;
    (contains(op.name, "attention.core.") ? core : gemm) += op.flops;
  }
  const int64_t h = c.width, L = c.n_layers;
  EXPECT_EQ(gemm, 72 * 2048 * L * h * h + 6 * 2048 * h * 51200);
  EXPECT_EQ(core, 7 * 2048 * 2048 * h * L);
  // FlashAttention-2's own convention: 4·N²·d·H/2 forward per sample.
  EXPECT_EQ(softmax_attention_forward_flops(1, 16, 8192, 128, true), 274'877'906'944);
  EXPECT_EQ(softmax_attention_backward_flops(1, 16, 8192, 128, true), 687'194'767'360);
  EXPECT_EQ(softmax_attention_backward_flops(1, 16, 8192, 128, false),
            2 * softmax_attention_forward_flops(1, 16, 8192, 128, false));
}

TEST(SoftmaxPlan, TpRanksAddUpToTheWholeModelFlops) {
  // Every TP rank plans the same shard: tp of them do the single rank's work.
  for (const char* name : {"megatron-7.5b", "llama3-8b", "llama2-70b"}) {
    const SoftmaxTransformerConfig c = softmax_preset(name);
    const StepShape shape{1, 2048, 2};
    const int64_t whole = model_flops(plan_softmax_transformer(c, 1, false, 1, shape));
    for (int tp : {2, 4, 8}) {
      if (c.padded_vocab_size(tp) != c.padded_vocab_size(1)) continue;  // padding adds columns
      for (bool tp_sp : {false, true}) {
        EXPECT_EQ(tp * model_flops(plan_softmax_transformer(c, tp, tp_sp, 1, shape)), whole)
            << name << " tp=" << tp << " tp_sp=" << tp_sp;
      }
    }
  }
}

TEST(SoftmaxPlan, TpCollectivesByHand) {
  const SoftmaxTransformerConfig c = small_gpt(1);
  const int64_t B = 2, N = 32, e = 2, h = c.width;
  const int64_t full = B * N * h * e;  // one [B, N, h] activation
  auto kinds = [](const PlannedOp& op) {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const PlannedCollective& col : op.collectives) {
      EXPECT_EQ(col.group, CommGroup::Tp);
      out.push_back({collective_name(col.kind), col.bytes});
    }
    return out;
  };
  using List = std::vector<std::pair<std::string, int64_t>>;
  // tp = 2: an all-reduce after out_proj and fc2 in forward, after fc1 and
  // qkv_proj in backward; none elsewhere in the layer.
  const OpPlan plan = plan_softmax_transformer(c, 2, false, 1, StepShape{B, N, e});
  const List none, all_reduce = {{"all_reduce", full}};
  EXPECT_EQ(kinds(find_op(plan, "layers.0.attention.qkv_proj.forward")), none);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.attention.out_proj.forward")), all_reduce);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.mlp.fc1.forward")), none);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.mlp.fc2.forward")), all_reduce);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.mlp.fc2.backward")), none);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.mlp.fc1.backward")), all_reduce);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.attention.out_proj.backward")), none);
  EXPECT_EQ(kinds(find_op(plan, "layers.0.attention.qkv_proj.backward")), all_reduce);
  int64_t layer_bytes = 0, forward_bytes = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (!op.name.starts_with("layers.0.")) continue;
    for (const PlannedCollective& col : op.collectives) {
      layer_bytes += col.bytes;
      if (op.name.ends_with(".forward")) forward_bytes += col.bytes;
    }
  }
  EXPECT_EQ(forward_bytes, 2 * full);
  EXPECT_EQ(layer_bytes, 4 * full);
  // The loss: three all-reduces of per-row f32 statistics.
  EXPECT_EQ(
      kinds(find_op(plan, "cross_entropy.forward")),
      (List{{"all_reduce", B * N * 4}, {"all_reduce", B * N * 4}, {"all_reduce", B * N * 4}}));
  EXPECT_EQ(kinds(find_op(plan, "embedding.forward")), all_reduce);

  // tp_sp: an all-gather of the stream shard (full/tp) into each
  // column-parallel GEMM, a reduce-scatter (output full/tp) out of each
  // row-parallel one; backward swaps them and re-gathers fc1/qkv's input.
  const OpPlan sp = plan_softmax_transformer(c, 2, true, 1, StepShape{B, N, e});
  const List gather = {{"all_gather", full / 2}}, scatter = {{"reduce_scatter", full / 2}};
  const List gather_scatter = {{"all_gather", full / 2}, {"reduce_scatter", full / 2}};
  EXPECT_EQ(kinds(find_op(sp, "layers.0.attention.qkv_proj.forward")), gather);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.attention.out_proj.forward")), scatter);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.mlp.fc1.forward")), gather);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.mlp.fc2.forward")), scatter);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.mlp.fc2.backward")), gather);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.mlp.fc1.backward")), gather_scatter);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.attention.out_proj.backward")), gather);
  EXPECT_EQ(kinds(find_op(sp, "layers.0.attention.qkv_proj.backward")), gather_scatter);
  // Norms and residual adds work on the stream's shard: N/2 tokens.
  EXPECT_EQ(find_op(sp, "layers.0.mlp_residual.forward").bytes_read, 2 * B * (N / 2) * h * e);
  EXPECT_EQ(find_op(plan, "layers.0.mlp_residual.forward").bytes_read, 2 * B * N * h * e);
  // One rank: no collective at all.
  for (const PlannedOp& op : plan_softmax_transformer(c, 1, true, 1, StepShape{B, N, e}).ops()) {
    EXPECT_TRUE(op.collectives.empty()) << op.name;
  }
}

TEST(SoftmaxPlan, UlyssesAllToAllsByHand) {
  // 8 heads of 16 and 4 KV heads over tp = 2 × sp = 2; B = 2, N = 64, bf16.
  const SoftmaxTransformerConfig c = small_llama(1);
  const int64_t B = 2, N = 64, e = 2, d = 16;
  const OpPlan plan = plan_softmax_transformer(c, 2, false, 2, StepShape{B, N, e});
  // This rank: N/2 = 32 tokens of 8/2 = 4 heads (q) and 4/2 = 2 KV heads.
  const int64_t rows = B * N / 2, q = rows * 4 * d * e, kv = rows * 2 * d * e;
  EXPECT_EQ(q, 8192);
  EXPECT_EQ(kv, 4096);
  auto a2a = [](const PlannedOp& op) {
    std::vector<int64_t> bytes;
    for (const PlannedCollective& col : op.collectives) {
      EXPECT_EQ(col.kind, CollectiveKind::AllToAll);
      EXPECT_EQ(col.group, CommGroup::Sp);
      bytes.push_back(col.bytes);
    }
    return bytes;
  };
  EXPECT_EQ(a2a(find_op(plan, "layers.0.attention.to_heads.forward")),
            (std::vector<int64_t>{q, kv, kv}));
  EXPECT_EQ(a2a(find_op(plan, "layers.0.attention.to_sequence.forward")),
            (std::vector<int64_t>{q}));
  EXPECT_EQ(a2a(find_op(plan, "layers.0.attention.to_heads.backward")), (std::vector<int64_t>{q}));
  EXPECT_EQ(a2a(find_op(plan, "layers.0.attention.to_sequence.backward")),
            (std::vector<int64_t>{q, kv, kv}));
  // The core sees the whole sequence for 8/(2·2) = 2 heads: causal half of 4·B·2·N²·d.
  EXPECT_EQ(find_op(plan, "layers.0.attention.core.forward").flops, 2 * B * 2 * N * N * d);
  // Everything else works on the sequence shard: qkv_proj on 32 tokens per sample.
  EXPECT_EQ(find_op(plan, "layers.0.attention.qkv_proj.forward").flops,
            2 * rows * c.width * (4 + 2 * 2) * d);
  // The tp·sp ranks together do the single rank's model FLOPs.
  EXPECT_EQ(4 * model_flops(plan),
            model_flops(plan_softmax_transformer(c, 1, false, 1, StepShape{B, N, e})));
}

// The fused core's ops carry what its rate depends on (sim/op_costs.h):
// under Ulysses the whole sequence, the head size, the scores of this rank's
// heads, dropout and the direction. No other op carries a shape.
TEST(SoftmaxPlan, FusedCoreCarriesItsShape) {
  SoftmaxTransformerConfig c = small_llama(1);  // 8 heads of 16, 4 KV heads
  c.dropout = true;
  const int64_t B = 2, N = 64, d = 16;
  const OpPlan plan = plan_softmax_transformer(c, 2, false, 2, StepShape{B, N, 2});
  const CoreShape forward = find_op(plan, "layers.0.attention.core.forward").core;
  const CoreShape backward = find_op(plan, "layers.0.attention.core.backward").core;
  // 8/(2·2) = 2 heads over all 64 tokens, causal: B·2·N²/2 scores.
  EXPECT_EQ(forward.length, N);
  EXPECT_EQ(forward.head_dim, d);
  EXPECT_EQ(forward.scores, B * 2 * N * N / 2);
  EXPECT_TRUE(forward.dropout);
  EXPECT_FALSE(forward.backward);
  EXPECT_EQ(backward.scores, forward.scores);
  EXPECT_TRUE(backward.backward);
  int shaped = 0;
  for (const PlannedOp& op : plan.ops()) shaped += op.core.length > 0;
  EXPECT_EQ(shaped, 2);
  // The unfused core is products and memory-bound kernels: no shape.
  c.flash_attention = false;
  const OpPlan unfused = plan_softmax_transformer(c, 2, false, 1, StepShape{B, N, 2});
  for (const PlannedOp& op : unfused.ops()) EXPECT_EQ(op.core.length, 0) << op.name;
}

TEST(SoftmaxPlan, BadLayoutsNameTheRule) {
  const StepShape shape{1, 2048, 2};
  EXPECT_EQ(user_error_of(
                [&] { plan_softmax_transformer(softmax_preset("gpt3-13b"), 16, false, 1, shape); }),
            "tp=16 does not divide 40 heads");
  EXPECT_EQ(user_error_of([&] {
              plan_softmax_transformer(softmax_preset("llama3-8b"), 16, false, 1, shape);
            }),
            "tp=16 does not divide 8 kv heads");
  EXPECT_EQ(user_error_of(
                [&] { plan_softmax_transformer(softmax_preset("gpt3-2.7b"), 3, false, 1, shape); }),
            "tp=3 does not divide 32 heads");
  EXPECT_TRUE(contains(user_error_of([&] {
                         plan_softmax_transformer(softmax_preset("gpt3-6.7b"), 8, false, 8, shape);
                       }),
                       "tp=8 × sp=8 does not divide 32 heads"));
  EXPECT_TRUE(contains(user_error_of([&] {
                         plan_softmax_transformer(softmax_preset("llama3-8b"), 8, false, 2, shape);
                       }),
                       "tp=8 × sp=2 does not divide 8 kv heads"));
  EXPECT_EQ(
      user_error_of([&] {
        plan_softmax_transformer(softmax_preset("llama3-8b"), 2, false, 4, StepShape{1, 2050, 2});
      }),
      "sp=4 does not divide the sequence of 2050 tokens");
  EXPECT_EQ(
      user_error_of([&] {
        plan_softmax_transformer(softmax_preset("llama3-8b"), 4, true, 2, StepShape{1, 2052, 2});
      }),
      "tp-sp: tp=4 does not divide the 1026 tokens of a sequence shard");
  EXPECT_EQ(user_error_of([&] {
              layer_activation_bytes(softmax_preset("gpt3-13b"), 16, false, 1, shape,
                                     Recompute::None);
            }),
            "tp=16 does not divide 40 heads");
  EXPECT_EQ(
      user_error_of([&] {
        plan_softmax_transformer(softmax_preset("gpt3-175b"), 8, false, 1, StepShape{1, 4096, 2});
      }),
      "sequence of 4096 tokens exceeds max-positions 2048 (learned positions)");
  EXPECT_EQ(user_error_of([&] {
              plan_softmax_transformer(softmax_preset("llama3-8b"), 1, false, 1,
                                       StepShape{1, 1LL << 31, 2});
            }),
            "sequence of 2147483648 tokens: at most 2147483647");
  SoftmaxTransformerConfig wide = small_gpt(1);
  wide.width = 65536;
  wide.n_heads = wide.n_kv_heads = 1;
  EXPECT_EQ(user_error_of([&] { plan_softmax_transformer(wide, 1, false, 1, shape); }),
            "head size 65536 (width 65536 / 1 heads): at most 32767");
  // Without tp_sp the sequence need not divide by tp.
  EXPECT_NO_THROW(
      plan_softmax_transformer(softmax_preset("llama3-8b"), 4, false, 1, StepShape{1, 2050, 2}));
}

// Korthikanti et al. 2022 Table 2 for s = 128, b = 2, h = 64, a = 4 (2-byte
// activations, dropout, F = 4h), with the unfused core: sbh = 16384 and
// 5as/h = 40.
TEST(SoftmaxActivations, KorthikantiTable2ByHand) {
  SoftmaxTransformerConfig c = small_gpt();
  c.flash_attention = false;
  const StepShape shape{2, 128, 2};
  const int64_t sbh = 16384;
  auto bytes = [&](int tp, bool tp_sp, Recompute r) {
    return layer_activation_bytes(c, tp, tp_sp, 1, shape, r);
  };
  EXPECT_EQ(bytes(1, false, Recompute::None), sbh * (34 + 40));  // 1,212,416
  EXPECT_EQ(bytes(2, false, Recompute::None),
            sbh * (10 + 24 / 2 + 40 / 2));                          // sbh(10 + 24/t + 5as/(ht))
  EXPECT_EQ(bytes(2, true, Recompute::None), sbh * (34 + 40) / 2);  // sbh(34 + 5as/h)/t
  EXPECT_EQ(bytes(2, false, Recompute::Selective), sbh * (10 + 24 / 2));  // sbh(10 + 24/t)
  EXPECT_EQ(bytes(2, true, Recompute::Selective), sbh * 34 / 2);          // 34sbh/t
  EXPECT_EQ(bytes(2, false, Recompute::Full), 2 * sbh);                   // 2sbh
  EXPECT_EQ(bytes(2, true, Recompute::Full), 2 * sbh / 2);                // its sequence shard
  EXPECT_EQ(bytes(1, false, Recompute::None), 1'212'416);
  // FlashAttention keeps no N² tensor: None is Korthikanti's selective row.
  c.flash_attention = true;
  EXPECT_EQ(bytes(1, false, Recompute::None), sbh * 34);
  EXPECT_EQ(bytes(2, false, Recompute::None), sbh * (10 + 24 / 2));
  EXPECT_EQ(bytes(2, true, Recompute::None), bytes(2, true, Recompute::Selective));
  // Ulysses splits every tensor's sequence (the core's: its heads) by sp.
  EXPECT_EQ(layer_activation_bytes(c, 1, false, 2, shape, Recompute::None), sbh * 34 / 2);
  c.flash_attention = false;
  EXPECT_EQ(layer_activation_bytes(c, 1, false, 2, shape, Recompute::None), sbh * (34 + 40) / 2);
}

// The Llama count (see softmax_transformer.cpp): sbh(12 + 4h_kv/h + 6F/h)
// with no parallelism, 8sbh of it replicated over TP.
TEST(SoftmaxActivations, LlamaByHand) {
  const SoftmaxTransformerConfig c = small_llama();  // h = 128, h_kv = 64, F = 320
  const StepShape shape{2, 64, 2};
  const int64_t sbh = 2 * 64 * 128;
  // 12 + 4·(64/128) + 6·(320/128) = 12 + 2 + 15 = 29.
  EXPECT_EQ(layer_activation_bytes(c, 1, false, 1, shape, Recompute::None), 29 * sbh);
  // tp = 2: 8 + (4 + 2 + 15)/2 = 18.5.
  EXPECT_EQ(layer_activation_bytes(c, 2, false, 1, shape, Recompute::None), 37 * sbh / 2);
  EXPECT_EQ(layer_activation_bytes(c, 2, true, 1, shape, Recompute::None), 29 * sbh / 2);
  EXPECT_EQ(layer_activation_bytes(c, 2, true, 1, shape, Recompute::Full), 2 * sbh / 2);
  // The released shapes: Llama-2-7B 32.125 sbh, Llama-3-8B 34 sbh (s = 4096, b = 1).
  const int64_t big = 4096LL * 4096;
  EXPECT_EQ(layer_activation_bytes(softmax_preset("llama2-7b"), 1, false, 1, StepShape{1, 4096, 2},
                                   Recompute::None),
            big * 257 / 8);
  EXPECT_EQ(layer_activation_bytes(softmax_preset("llama3-8b"), 1, false, 1, StepShape{1, 4096, 2},
                                   Recompute::None),
            big * 34);
}

// What Megatron-LM's layer moves besides its products and core (a PyTorch
// GPT's step runs the same kernels: docs/validation.md): the core's output
// copied back to the sequence-first layout, the Q/K/V gradients
// concatenated for the QKV product's backward, and the residual's backward
// as two kernels — dropout's on the branch and the sum of the branch's and
// the skip's gradients where the stream forks.
// A bias's gradient is a reduction of its output gradient over the rows, a
// kernel of its own: column-parallel biases (QKV, fc1) over the product's
// rows, their shard of the columns; row-parallel ones (out_proj, fc2) over
// the residual stream's rows (the sequence shard with tp-sp), all h
// columns. None without biases.
TEST(SoftmaxPlan, BiasGradientsAreReductions) {
  const SoftmaxTransformerConfig c = small_gpt(1);  // 64 wide, 4 heads, MLP 256
  const int64_t B = 2, N = 64, e = 2, h = c.width, tp = 2;
  const OpPlan plan = plan_softmax_transformer(c, tp, true, 1, StepShape{B, N, e});
  auto expect = [&](const char* name, int64_t rows, int64_t width) {
    const PlannedOp& op = find_op(plan, name);
    EXPECT_EQ(op.bytes_read, rows * width * e) << name;
    EXPECT_EQ(op.bytes_written, width * e) << name;
    EXPECT_EQ(op.flops, rows * width) << name;
  };
  expect("layers.0.attention.qkv_bias.backward", B * N, 3 * h / tp);
  expect("layers.0.mlp.fc1_bias.backward", B * N, c.ffn_dim / tp);
  expect("layers.0.attention.out_bias.backward", B * N / tp, h);
  expect("layers.0.mlp.fc2_bias.backward", B * N / tp, h);
  const OpPlan llama = plan_softmax_transformer(small_llama(1), 1, false, 1, StepShape{B, N, e});
  for (const PlannedOp& op : llama.ops())
    EXPECT_EQ(op.name.find("_bias."), std::string::npos) << op.name;
}

TEST(SoftmaxPlan, LayoutCopiesAndResidualGradientSums) {
  SoftmaxTransformerConfig c = small_gpt(1);
  ASSERT_TRUE(c.dropout);
  const int64_t B = 2, N = 64, e = 2, h = c.width;
  const int64_t n = B * N * h;
  const OpPlan plan = plan_softmax_transformer(c, 1, false, 1, StepShape{B, N, e});
  const PlannedOp& merge = find_op(plan, "layers.0.attention.merge_heads.forward");
  EXPECT_EQ(merge.bytes_read, n * e);
  EXPECT_EQ(merge.bytes_written, n * e);
  const PlannedOp& split = find_op(plan, "layers.0.attention.split_qkv.backward");
  EXPECT_EQ(split.bytes_read, 3 * n * e);  // q, k and v of h each (no GQA here)
  EXPECT_EQ(split.bytes_written, 3 * n * e);
  // Dropout's backward reads the gradient and the byte mask and writes the
  // branch's; the sum reads two gradients and writes one.
  const PlannedOp& residual = find_op(plan, "layers.0.mlp_residual.backward");
  EXPECT_EQ(residual.bytes_read, (n * e + n) + 2 * n * e);
  EXPECT_EQ(residual.bytes_written, n * e + n * e);
  c.dropout = false;
  const OpPlan plain = plan_softmax_transformer(c, 1, false, 1, StepShape{B, N, e});
  EXPECT_EQ(find_op(plain, "layers.0.mlp_residual.backward").bytes_read, 2 * n * e);
  EXPECT_EQ(find_op(plain, "layers.0.mlp_residual.backward").bytes_written, n * e);
}

TEST(SoftmaxPlan, UnfusedCoreMovesTheN2Tensors) {
  SoftmaxTransformerConfig c = small_gpt(1);
  const int64_t B = 2, N = 64, e = 2, H = 4, d = 16;
  const int64_t scores = B * H * N * N;
  c.flash_attention = false;
  const OpPlan plan = plan_softmax_transformer(c, 1, false, 1, StepShape{B, N, e});
  // Megatron's two kernels: the softmax reads the scores and writes the
  // probabilities; the dropout reads them back and writes its mask (a byte
  // each) and the dropped probabilities.
  const PlannedOp& softmax = find_op(plan, "layers.0.attention.softmax.forward");
  EXPECT_EQ(softmax.bytes_read, scores * e + scores * e);
  EXPECT_EQ(softmax.bytes_written, scores * e + scores + scores * e);
  // Backward: dropout's reads the gradient and the mask and writes its
  // gradient; the softmax's reads that and the probabilities and writes dS.
  const PlannedOp& softmax_backward = find_op(plan, "layers.0.attention.softmax.backward");
  EXPECT_EQ(softmax_backward.bytes_read, scores * e + scores + scores * e + scores * e);
  EXPECT_EQ(softmax_backward.bytes_written, scores * e + scores * e);
  // Without dropout: one kernel each way.
  SoftmaxTransformerConfig no_dropout = c;
  no_dropout.dropout = false;
  const OpPlan plain = plan_softmax_transformer(no_dropout, 1, false, 1, StepShape{B, N, e});
  EXPECT_EQ(find_op(plain, "layers.0.attention.softmax.forward").bytes_read, scores * e);
  EXPECT_EQ(find_op(plain, "layers.0.attention.softmax.forward").bytes_written, scores * e);
  EXPECT_EQ(find_op(plain, "layers.0.attention.softmax.backward").bytes_read, 2 * scores * e);
  EXPECT_EQ(find_op(plain, "layers.0.attention.softmax.backward").bytes_written, scores * e);
  EXPECT_EQ(find_op(plan, "layers.0.attention.scores.forward").flops, 2 * B * H * N * N * d);
  // Backward's products each read their operands: dQ = dS·K and dK = dSᵀ·Q
  // read the N×N gradient twice; dP = dO·Vᵀ and dV = Pᵀ·dO read dO twice.
  const int64_t head_tensor = B * H * N * d * e;
  EXPECT_EQ(find_op(plan, "layers.0.attention.scores.backward").bytes_read,
            2 * scores * e + 2 * head_tensor);
  EXPECT_EQ(find_op(plan, "layers.0.attention.context.backward").bytes_read,
            2 * head_tensor + scores * e + head_tensor);
  // The fused core reads q, k, v and writes o (and its f32 logsumexp): linear in N.
  c.flash_attention = true;
  const OpPlan flash = plan_softmax_transformer(c, 1, false, 1, StepShape{B, N, e});
  const PlannedOp& core = find_op(flash, "layers.0.attention.core.forward");
  EXPECT_EQ(core.bytes_read, 3 * B * N * H * d * e);
  EXPECT_EQ(core.bytes_written, B * N * H * d * e + B * H * N * 4);
}

}  // namespace linpar
