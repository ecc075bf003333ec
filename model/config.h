// TransNormerLLM model configuration, presets and parameter counting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace linpar {

// Which per-head decay rule the token mixer uses (MODEL.md, "Decay schedule").
enum class DecayRule {
  Released,  // slope_h · (1 − l/(L−1) + 1e−5), as the released modeling_transnormer.py
  Paper,     // exp(−(8h/H)·(1 − l/L)) as the paper states it (arXiv 2307.14995)
};

// Which layers apply LRPE to q and k.
enum class LrpeLayers { None, First, All };

struct ModelConfig {
  std::string name = "custom";
  int64_t n_layers = 2;
  int64_t width = 64;        // D (decoder_embed_dim)
  int64_t n_heads = 4;       // H; head dim d = D / H
  int64_t glu_dim = 128;     // F (SGLU inner width)
  int64_t vocab_size = 256;  // V
  LrpeLayers lrpe = LrpeLayers::None;
  DecayRule decay = DecayRule::Released;
  bool scale_embedding = true;  // multiply embeddings by √D (released: !no_scale_embedding)
  bool tie_embeddings = false;  // LM head shares the embedding table
  double init_std = 0.02;
  double norm_eps = 1e-6;
  int64_t attention_block = 64;  // lightning-attention block size b

  int64_t head_dim() const { return width / n_heads; }
  bool layer_uses_lrpe(int64_t layer) const {
    return lrpe == LrpeLayers::All || (lrpe == LrpeLayers::First && layer == 0);
  }
  // Per-head slopes s_h of layer `layer` (λ_h = exp(−s_h)).
  std::vector<double> layer_slopes(int64_t layer) const;
  double embedding_scale() const;

  int64_t parameters_per_layer(int64_t layer) const;
  int64_t parameter_count() const;  // global count (the `parameters:` line)

  // Throws UserError naming the field and the rule for an invalid config.
  void validate() const;
};

// The ALiBi geometric slopes for H heads (Press et al.), as the released code
// builds them: for H a power of two, start = 2^(−8/H), slope_i = start^(i+1);
// otherwise the closest power of two's slopes followed by every other slope of
// twice that power.
std::vector<double> alibi_slopes(int64_t n_heads);

struct PresetInfo {
  ModelConfig config;
  double published_parameters;  // as the source prints it (0 for our small presets)
  std::string source;           // where the shape comes from
};

const std::vector<PresetInfo>& model_presets();
// UserError listing the known names when `name` is unknown.
ModelConfig preset_config(const std::string& name);

}  // namespace linpar
