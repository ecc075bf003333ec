#include "model/released_names.h"

#include <fmt/format.h>

namespace linpar {

std::vector<NamePair> released_parameter_names(const ModelConfig& config) {
  // Same order as TransNormerLLM's constructor adds parameters.
  const int64_t V = config.vocab_size, D = config.width, F = config.glu_dim;
  std::vector<NamePair> names;
  names.push_back({"embedding", "model.embed_tokens.weight", {V, D}});
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string ours = fmt::format("layers.{}.", l);
    const std::string theirs = fmt::format("model.layers.{}.", l);
    names.push_back(
        {ours + "token_mixer.qkvu_proj", theirs + "token_mixer.qkvu_proj.weight", {4 * D, D}});
    names.push_back(
        {ours + "token_mixer.out_proj", theirs + "token_mixer.out_proj.weight", {D, D}});
    if (config.layer_uses_lrpe(l)) {
      names.push_back({ours + "token_mixer.lrpe.theta",
                       theirs + "token_mixer.lrpe.theta",
                       {config.n_heads, 1, config.head_dim()}});
    }
    names.push_back({ours + "channel_mixer.l1", theirs + "channel_mixer.l1.weight", {F, D}});
    names.push_back({ours + "channel_mixer.l2", theirs + "channel_mixer.l2.weight", {F, D}});
    names.push_back({ours + "channel_mixer.l3", theirs + "channel_mixer.l3.weight", {D, F}});
  }
  if (!config.tie_embeddings) names.push_back({"lm_head", "lm_head.weight", {V, D}});
  return names;
}

}  // namespace linpar
