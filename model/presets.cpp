// Model presets. The paper sizes and the released configs are documented in
// docs/model.md with their sources; tests/model/config_test.cpp checks every
// computed parameter count against the published one.
#include <algorithm>

#include "core/error.h"
#include "model/config.h"

namespace linpar {

namespace {

ModelConfig make(const std::string& name, int64_t layers, int64_t width, int64_t heads, int64_t glu_dim,
                 int64_t vocab, LrpeLayers lrpe = LrpeLayers::None) {
  ModelConfig c;
  c.name = name;
  c.n_layers = layers;
  c.width = width;
  c.n_heads = heads;
  c.glu_dim = glu_dim;
  c.vocab_size = vocab;
  c.lrpe = lrpe;
  return c;
}

std::vector<PresetInfo> build_presets() {
  std::vector<PresetInfo> presets;
  // Small presets for tests and demos: byte vocabulary (256).
  presets.push_back({make("tnl-tiny", 2, 64, 4, 128, 256, LrpeLayers::First), 0, "linpar demo/test size"});
  presets.push_back({make("tnl-small", 4, 128, 4, 256, 256, LrpeLayers::First), 0, "linpar demo size"});
  presets.push_back({make("tnl-base", 8, 256, 8, 512, 256, LrpeLayers::First), 0, "linpar demo size"});
  return presets;
}

}  // namespace

const std::vector<PresetInfo>& model_presets() {
  static const std::vector<PresetInfo> presets = build_presets();
  return presets;
}

ModelConfig preset_config(const std::string& name) {
  std::string known;
  for (const PresetInfo& p : model_presets()) {
    if (p.config.name == name) return p.config;
    known += (known.empty() ? "" : ", ") + p.config.name;
  }
  user_error("--model {}: unknown preset (known: {})", name, known);
}

}  // namespace linpar
