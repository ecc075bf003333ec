#include "model/parameters.h"

#include "core/rng.h"

namespace linpar {

Parameter& ParameterSet::add_normal(const std::string& name, const Shape& shape, DType dtype,
                                    uint64_t seed, double std) {
  Tensor value = Tensor::empty(shape, DType::F64);
  CounterRng rng(seed, name);
  double* p = value.data<double>();
  for (int64_t i = 0; i < value.numel(); ++i) p[i] = std * rng.normal(static_cast<uint64_t>(i));
  return add_values(name, value.to(dtype), true);
}

Parameter& ParameterSet::add_values(const std::string& name, const Tensor& value,
                                    bool weight_decay) {
  LINPAR_CHECK(!contains(name), "parameter {} added twice", name);
  params_.push_back(Parameter{
      name, value, Tensor::zeros(value.shape(), value.dtype(), value.device()), weight_decay});
  return params_.back();
}

Parameter& ParameterSet::get(const std::string& name) {
  for (Parameter& p : params_) {
    if (p.name == name) return p;
  }
  LINPAR_CHECK(false, "no parameter named {}", name);
  __builtin_unreachable();
}

const Parameter& ParameterSet::get(const std::string& name) const {
  for (const Parameter& p : params_) {
    if (p.name == name) return p;
  }
  LINPAR_CHECK(false, "no parameter named {}", name);
  __builtin_unreachable();
}

bool ParameterSet::contains(const std::string& name) const {
  for (const Parameter& p : params_) {
    if (p.name == name) return true;
  }
  return false;
}

void ParameterSet::zero_grad() {
  for (Parameter& p : params_) p.grad.fill_zero();
}

int64_t ParameterSet::numel() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += p.value.numel();
  return n;
}

}  // namespace linpar
