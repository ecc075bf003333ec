// GPT- and Llama-style softmax transformers, described for the simulator
// through the same op plan as TransNormerLLM (model/op_plan.h): the shapes,
// their parameter counts under Megatron's tensor-parallel sharding, the ops
// of one micro-batch on one rank, and the activations a layer keeps for its
// backward. Nothing here allocates or runs a model; the published large runs
// the simulator is validated against (GPT-3, Megatron-LM's scaling runs,
// Llama 2/3) are of this family.
//
// Conventions (all per rank, one micro-batch, forward then backward):
//  * GEMM: 2·m·n·k FLOPs forward; backward 2× (input and weight gradients).
//  * Attention core, flash_attention (FlashAttention-2 as its paper reports
//    it, Dao 2023 §4.1): forward 4·B·H·N²·d / 2, the causal mask skipping
//    half of the N² work; backward 2.5× forward (five N²·d products instead
//    of two: the scores are recomputed). No N² tensor is read, written or kept.
//  * Attention core, unfused (Megatron-LM before FlashAttention, the
//    Narayanan et al. 2021 and Korthikanti et al. 2022 runs): Q·Kᵀ and P·V as
//    batched GEMMs over the full N×N square (the mask is applied after),
//    4·B·H·N²·d forward, backward 2×, with the scores, probabilities and the
//    dropout mask written to and read from memory. With this core the plan's
//    GEMM and attention FLOPs are exactly Narayanan et al. 2021 eq. (3)
//    without recomputation (72 instead of 96; see plan_softmax_transformer).
//  * Elementwise ops (norms, activations, residual adds, RoPE, softmax) are
//    costed by their bytes; their FLOPs are rough per-element counts, not
//    model FLOPs.
//  * Bias adds are fused into the GEMMs' epilogues (Megatron fuses bias+GeLU
//    and bias+dropout+add): their bytes are counted, their FLOPs are not (as
//    eq. (3) does not count them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/op_plan.h"
#include "model/recompute.h"

namespace linpar {

struct SoftmaxTransformerConfig {
  enum class Mlp { Gelu, SwiGlu };  // fc1 → GeLU → fc2, or gate_up → SiLU(gate)·up → down
  enum class Norm { LayerNorm, RMSNorm };  // weight and bias, or weight only

  std::string name = "custom";
  std::string family = "gpt";  // "gpt" or "llama": a label (the shape fields decide the ops)
  int64_t n_layers = 2;
  int64_t width = 64;      // h
  int64_t n_heads = 4;     // a; head dim d = h / a
  int64_t n_kv_heads = 4;  // = n_heads for multi-head attention, fewer for GQA
  int64_t ffn_dim = 256;   // MLP inner width (4h for GPT)
  int64_t vocab_size = 256;
  Mlp mlp = Mlp::Gelu;
  Norm norm = Norm::LayerNorm;
  bool tie_embeddings = true;   // LM head shares the embedding table
  bool bias = true;             // biases on every linear layer (GPT) or none (Llama)
  int64_t max_positions = 0;    // learned position embeddings (GPT); 0: RoPE
  bool dropout = false;         // dropout after attention and MLP, and on the probabilities (in the
                                // FlashAttention kernel, or its own kernel when unfused)
  bool flash_attention = true;  // the attention core's kernel (see the conventions above)
  double published_parameters = 0;  // as the source prints it (0: none)
  std::string source;               // where the shape comes from

  int64_t head_dim() const { return width / n_heads; }
  int64_t kv_width() const { return n_kv_heads * head_dim(); }
  // Throws UserError naming the field and the rule.
  void validate() const;

  // The vocabulary Megatron-LM pads to for `tp` ranks: a multiple of 128·tp
  // (--make-vocab-size-divisible-by 128), so every rank holds an equal slice.
  int64_t padded_vocab_size(int tp) const;
  // One TP rank's share of one layer (Megatron sharding): QKV and fc1 /
  // gate_up column-parallel (weights and biases split), out_proj and fc2 /
  // down row-parallel (weights split, biases replicated), norms replicated.
  int64_t layer_parameters(int tp = 1) const;
  // One TP rank's input embedding: its slice of the vocabulary-parallel table
  // (padded vocabulary) and, for learned positions, the whole replicated
  // position table.
  int64_t embedding_parameters(int tp = 1) const;
  // One TP rank's LM head slice (padded vocabulary); 0 when tied.
  int64_t lm_head_parameters(int tp = 1) const;
  int64_t final_norm_parameters() const;
  // The whole model as papers count it: the unpadded vocabulary, the LM head
  // once when tied.
  int64_t parameter_count() const;
};

// GPT-3 (Brown et al. 2020), Megatron-LM's scaling runs (Narayanan et al.
// 2021), Llama 2 and Llama 3; names never clash with the TransNormer presets.
const std::vector<SoftmaxTransformerConfig>& softmax_presets();
std::optional<SoftmaxTransformerConfig> find_softmax_preset(const std::string& name);
// UserError listing the known names when `name` is unknown.
SoftmaxTransformerConfig softmax_preset(const std::string& name);

// The attention core's FLOPs for B samples, H heads of dim d over N tokens
// (the conventions above).
int64_t softmax_attention_forward_flops(int64_t batch, int64_t heads, int64_t length,
                                        int64_t head_dim, bool flash_attention);
int64_t softmax_attention_backward_flops(int64_t batch, int64_t heads, int64_t length,
                                         int64_t head_dim, bool flash_attention);

// UserError naming the rule a layout breaks: tp divides the heads, the KV
// heads and the MLP width; Ulysses (sp > 1) divides heads and KV heads by
// tp·sp and the sequence by sp; tp_sp divides the sequence (per sp rank) by tp;
// learned positions cover the sequence.
void validate_softmax_layout(const SoftmaxTransformerConfig& config, int tp, bool tp_sp, int sp,
                             const StepShape& shape);

// One micro-batch's forward then backward on one rank, in execution order.
// shape.length is the whole sequence of a sample; the plan divides it by sp
// for every op but the attention core, which under Ulysses (sp > 1) sees the
// whole sequence for heads/(tp·sp) heads after an all-to-all of q, k and v
// (group "sp"; each all-to-all's bytes are this rank's buffer, as
// lasp/ulysses.cpp plans them) and returns its output by another. TP
// collectives (group "tp") are those model/tensor_parallel.h plans for the
// TransNormer: an all-reduce after each row-parallel GEMM in forward and
// after each column-parallel one in backward; with tp_sp an all-gather
// before each column-parallel GEMM and a reduce-scatter after each
// row-parallel one, swapped in backward. Recomputation as Megatron-LM runs
// it (Korthikanti et al. §5), ops of pass Recompute before each layer's
// backward: full, the layer's every forward op with its collectives;
// selective, the attention core alone. Not in the plan: with tp_sp, the
// once-per-step all-reduce of the replicated norm weights' and row-parallel
// biases' gradients.
OpPlan plan_softmax_transformer(const SoftmaxTransformerConfig& config, int tp, bool tp_sp, int sp,
                                const StepShape& shape, Recompute recompute = Recompute::None);

// Bytes of activations one layer keeps from one micro-batch's forward until
// its backward, on one rank (Korthikanti et al. 2022 §4; see the .cpp).
int64_t layer_activation_bytes(const SoftmaxTransformerConfig& config, int tp, bool tp_sp, int sp,
                               const StepShape& shape, Recompute recompute);

}  // namespace linpar
