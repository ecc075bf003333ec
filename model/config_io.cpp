#include "model/config_io.h"

#include "core/error.h"

namespace linpar {

std::string lrpe_name(LrpeLayers lrpe) {
  switch (lrpe) {
    case LrpeLayers::None:
      return "none";
    case LrpeLayers::First:
      return "first";
    case LrpeLayers::All:
      return "all";
  }
  return "?";
}

LrpeLayers lrpe_from_name(const std::string& name) {
  if (name == "none") return LrpeLayers::None;
  if (name == "first") return LrpeLayers::First;
  if (name == "all") return LrpeLayers::All;
  user_error("--lrpe {}: expected none, first or all", name);
}

std::string decay_name(DecayRule rule) {
  return rule == DecayRule::Released ? "released" : "paper";
}

DecayRule decay_from_name(const std::string& name) {
  if (name == "released") return DecayRule::Released;
  if (name == "paper") return DecayRule::Paper;
  user_error("--decay {}: expected released or paper", name);
}

nlohmann::json config_to_json(const ModelConfig& c) {
  return {{"name", c.name},
          {"layers", c.n_layers},
          {"width", c.width},
          {"heads", c.n_heads},
          {"glu_dim", c.glu_dim},
          {"vocab_size", c.vocab_size},
          {"lrpe", lrpe_name(c.lrpe)},
          {"decay", decay_name(c.decay)},
          {"scale_embedding", c.scale_embedding},
          {"tie_embeddings", c.tie_embeddings},
          {"init_std", c.init_std},
          {"norm_eps", c.norm_eps},
          {"attention_block", c.attention_block}};
}

ModelConfig config_from_json(const nlohmann::json& j) {
  try {
    ModelConfig c;
    c.name = j.at("name").get<std::string>();
    c.n_layers = j.at("layers").get<int64_t>();
    c.width = j.at("width").get<int64_t>();
    c.n_heads = j.at("heads").get<int64_t>();
    c.glu_dim = j.at("glu_dim").get<int64_t>();
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.lrpe = lrpe_from_name(j.at("lrpe").get<std::string>());
    c.decay = decay_from_name(j.at("decay").get<std::string>());
    c.scale_embedding = j.at("scale_embedding").get<bool>();
    c.tie_embeddings = j.at("tie_embeddings").get<bool>();
    c.init_std = j.at("init_std").get<double>();
    c.norm_eps = j.at("norm_eps").get<double>();
    c.attention_block = j.at("attention_block").get<int64_t>();
    return c;
  } catch (const nlohmann::json::exception& e) {
    user_error("model config in checkpoint metadata is incomplete: {}", e.what());
  }
}

void check_same_architecture(const ModelConfig& saved, const ModelConfig& current,
                             const std::string& what) {
  nlohmann::json a = config_to_json(saved), b = config_to_json(current);
  // attention_block only changes how attention is computed, not the weights.
  for (const char* key : {"layers", "width", "heads", "glu_dim", "vocab_size", "lrpe", "decay",
                          "scale_embedding", "tie_embeddings", "norm_eps"}) {
    if (a.at(key) != b.at(key)) {
      user_error("{}: model mismatch: {} is {} in the checkpoint ({}), {} in this run ({})", what,
                 key, a.at(key).dump(), saved.name, b.at(key).dump(), current.name);
    }
  }
}

}  // namespace linpar
