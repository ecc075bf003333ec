#include "model/parameters.h"

#include "core/op_timing.h"
#include "core/ops/elementwise.h"
#include "core/rng.h"

namespace linpar {

Parameter& ParameterSet::add_normal(const std::string& name, const ShardBox& box,
                                    const Shape& local_shape, DType dtype, uint64_t seed,
                                    double std) {
  const size_t rank = box.global_shape.size();
  LINPAR_CHECK(box.offset.size() == rank && box.box_shape.size() == rank, "parameter {}: box rank",
               name);
  if (build_ == Device::Meta)
    return add_values(name, Tensor::empty(local_shape, dtype, Device::Meta), true, box);
  Tensor value = Tensor::empty(box.box_shape, DType::F64);
  CounterRng rng(seed, name);
  double* p = value.data<double>();
  // Walk the box in row-major order, tracking the global row-major index.
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < value.numel(); ++i) {
    int64_t global = 0;
    for (size_t d = 0; d < rank; ++d)
      global = global * box.global_shape[d] + box.offset[d] + index[d];
    p[i] = std * rng.normal(static_cast<uint64_t>(global));
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < box.box_shape[d]) break;
      index[d] = 0;
    }
  }
  return add_values(name, value.reshape(local_shape).to(dtype), true, box);
}

Parameter& ParameterSet::add_normal(const std::string& name, const Shape& shape, DType dtype,
                                    uint64_t seed, double std) {
  return add_normal(name, ShardBox::whole(shape), shape, dtype, seed, std);
}

Parameter& ParameterSet::add_values(const std::string& name, const Tensor& value, bool weight_decay,
                                    const ShardBox& box) {
  LINPAR_CHECK(build_ == Device::Meta || !contains(name), "parameter {} added twice", name);
  LINPAR_CHECK(shape_numel(box.box_shape) == value.numel(), "parameter {}: box {} for {} values",
               name, shape_string(box.box_shape), value.numel());
  const Tensor placed = build_ == Device::Meta ? value.to(Device::Meta) : value;
  params_.push_back(Parameter{name, placed,
                              Tensor::zeros(placed.shape(), placed.dtype(), placed.device()),
                              weight_decay, box.global_shape, box.offset, box.box_shape});
  return params_.back();
}

Parameter& ParameterSet::add_values(const std::string& name, const Tensor& value,
                                    bool weight_decay) {
  return add_values(name, value, weight_decay, ShardBox::whole(value.shape()));
}

Parameter& ParameterSet::add_computed(const std::string& name, const Shape& shape, DType dtype,
                                      bool weight_decay, const ShardBox& box,
                                      const std::function<Tensor()>& make) {
  if (build_ == Device::Meta)
    return add_values(name, Tensor::empty(shape, dtype, Device::Meta), weight_decay, box);
  const Tensor value = make();
  LINPAR_CHECK(value.shape() == shape && value.dtype() == dtype, "parameter {}: {} {} computed",
               name, dtype_name(value.dtype()), shape_string(value.shape()));
  return add_values(name, value, weight_decay, box);
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

void ParameterSet::place(Device device, DType compute_dtype) {
  for (Parameter& p : params_) {
    if (p.value.device() != device) {
      p.value = p.value.to(device);
      p.grad = p.grad.to(device);
    }
    p.compute = Tensor();
    if (compute_dtype != p.value.dtype()) p.compute = Tensor::empty(p.value.shape(), compute_dtype, device);
  }
  refresh_compute();
}

void ParameterSet::refresh_compute() {
  for (Parameter& p : params_) {
    if (p.compute.defined()) convert(p.value, p.compute);
  }
}

void ParameterSet::zero_grad() {
  LINPAR_OP_TIME("zero_grad", params_.empty() ? Device::CPU : params_.front().grad.device());
  for (Parameter& p : params_) {
    if (p.grad.defined()) p.grad.fill_zero();  // (ZeRO-2 and -3 keep none between steps)
  }
}

int64_t ParameterSet::numel() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += shape_numel(p.box_shape);  // (ZeRO-3 frees values)
  return n;
}

}  // namespace linpar
