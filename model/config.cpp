#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace linpar {

std::vector<double> alibi_slopes(int64_t n_heads) {
  auto power_of_two_slopes = [](int64_t n) {
    std::vector<double> slopes;
    const double start = std::pow(2.0, -8.0 / static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) slopes.push_back(std::pow(start, static_cast<double>(i + 1)));
    return slopes;
  };
  const int64_t closest = int64_t{1}
                          << static_cast<int>(std::floor(std::log2(static_cast<double>(n_heads))));
  if (closest == n_heads) return power_of_two_slopes(n_heads);
  std::vector<double> slopes = power_of_two_slopes(closest);
  std::vector<double> extra = power_of_two_slopes(2 * closest);
  for (size_t i = 0; i < extra.size() && static_cast<int64_t>(slopes.size()) < n_heads; i += 2) {
    slopes.push_back(extra[i]);
  }
  return slopes;
}

std::vector<double> ModelConfig::layer_slopes(int64_t layer) const {
  std::vector<double> slopes;
  if (decay == DecayRule::Released) {
    // Released code: slope · (1 − l/(L−1) + 1e−5). With one layer the ratio is
    // 0/0; we take the first layer's value (factor 1 + 1e−5).
    const double ratio =
        n_layers > 1 ? static_cast<double>(layer) / static_cast<double>(n_layers - 1) : 0.0;
    for (double s : alibi_slopes(n_heads)) slopes.push_back(s * (1.0 - ratio + 1e-5));
  } else {
    // Paper: λ_h = exp(−(8h/H)(1 − l/L)), h = 1..H, so the slope is its argument.
    for (int64_t h = 1; h <= n_heads; ++h) {
      slopes.push_back(8.0 * static_cast<double>(h) / static_cast<double>(n_heads) *
                       (1.0 - static_cast<double>(layer) / static_cast<double>(n_layers)));
    }
  }
  return slopes;
}

double ModelConfig::embedding_scale() const {
  return scale_embedding ? std::sqrt(static_cast<double>(width)) : 1.0;
}

int64_t ModelConfig::parameters_per_layer(int64_t layer) const {
  const int64_t D = width, F = glu_dim;
  int64_t count = D * 4 * D                // qkvu_proj
                  + D * D                  // out_proj
                  + 3 * D * F;             // SGLU l1, l2, l3
  if (layer_uses_lrpe(layer)) count += D;  // θ, one angle per channel
  return count;
}

int64_t ModelConfig::parameter_count() const {
  int64_t count = vocab_size * width;                // embedding
  if (!tie_embeddings) count += width * vocab_size;  // LM head
  for (int64_t l = 0; l < n_layers; ++l) count += parameters_per_layer(l);
  return count;
}

void ModelConfig::validate() const {
  auto positive = [](const char* field, int64_t v) {
    if (v <= 0) user_error("model {}: {} must be positive", field, v);
  };
  positive("layers", n_layers);
  positive("width", width);
  positive("heads", n_heads);
  positive("glu-dim", glu_dim);
  positive("vocab-size", vocab_size);
  positive("attention-block", attention_block);
  if (width % n_heads != 0) {
    user_error("model width {} must be divisible by heads {}", width, n_heads);
  }
  if (!(init_std > 0)) user_error("model init-std {} must be positive", init_std);
  if (!(norm_eps > 0)) user_error("model norm-eps {} must be positive", norm_eps);
  if (vocab_size > (int64_t{1} << 31) - 1)
    user_error("model vocab-size {} exceeds 2^31 - 1", vocab_size);
}

}  // namespace linpar
