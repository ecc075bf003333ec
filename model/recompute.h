// Activation recomputation (Korthikanti et al. 2022, "Reducing Activation
// Recomputation in Large Transformer Models", §5): which of a layer's
// forward activations stay in memory until its backward. Shared by the
// models' activation counts (sim/softmax_transformer.h) and the
// simulator's memory model.
#pragma once

#include <string>

namespace linpar {

enum class Recompute {
  None,       // every activation the backward needs is kept
  Selective,  // the attention core is recomputed from its kept projections: for a softmax
              // transformer its N² tensors (scores, softmax, dropout), for the TransNormer
              // what lies between qkvu_proj and out_proj (sim/memory.cpp)
  Full,       // only each layer's input is kept; the whole layer runs forward again in backward
};

// `--recompute none|selective|full`; UserError naming the value and the choices.
Recompute recompute_from_name(const std::string& name);
const char* recompute_name(Recompute recompute);

}  // namespace linpar
