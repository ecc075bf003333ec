// Named model parameters with their gradients. Names are linpar's own
// ("layers.3.token_mixer.qkvu_proj"), stable across layouts; checkpoints and
// the released-weights converter key on them.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace linpar {

struct Parameter {
  std::string name;
  Tensor value;
  Tensor grad;
  bool weight_decay = true;  // matrices decay; 1-d angles (LRPE θ) do not
};

class ParameterSet {
 public:
  // Adds a parameter initialised from N(0, std) drawn by the counter RNG keyed by
  // (seed, name, element index): layout-independent initialisation.
  Parameter& add_normal(const std::string& name, const Shape& shape, DType dtype, uint64_t seed,
                        double std);
  Parameter& add_values(const std::string& name, const Tensor& value, bool weight_decay);

  Parameter& get(const std::string& name);
  const Parameter& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::deque<Parameter>& all() { return params_; }
  const std::deque<Parameter>& all() const { return params_; }

  void zero_grad();
  int64_t numel() const;

 private:
  std::deque<Parameter> params_;  // deque: references stay valid as parameters are added
};

}  // namespace linpar
