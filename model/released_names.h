// Parameter names of the released TransNormerLLM checkpoints (HuggingFace
// OpenNLPLab/TransNormerLLM-*, modeling_transnormer.py) and linpar's own.
// The released code stores nn.Linear weights as [out, in], as linpar does, and
// splits qkvu_proj's output into q, k, v, u in that order, as linpar does, so
// converting is renaming.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace linpar {

struct NamePair {
  std::string linpar;    // e.g. "layers.0.token_mixer.qkvu_proj"
  std::string released;  // e.g. "model.layers.0.token_mixer.qkvu_proj.weight"
  Shape released_shape;  // the tensor's shape in the released files
};

// Every parameter of a model with this config, in linpar's parameter order.
// Shapes equal linpar's except LRPE's θ: linpar keeps it flat [D], the
// released Lrpe module stores it as [H, 1, d] (same element order).
std::vector<NamePair> released_parameter_names(const ModelConfig& config);

}  // namespace linpar
