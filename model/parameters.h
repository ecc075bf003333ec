// Named model parameters with their gradients. Names are linpar's own
// ("layers.3.token_mixer.qkvu_proj"), stable across layouts; checkpoints and
// the released-weights converter key on them.
//
// Under tensor parallelism a rank holds one box of each global tensor: the box
// [offset, offset + box_shape) of a tensor of global_shape, stored in `value`
// (whose own shape may differ, e.g. qkvu_proj's box [4, D/tp, D] is used as a
// [4·D/tp, D] matrix). Checkpoints store and read exactly these boxes.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace linpar {

struct Parameter {
  std::string name;
  Tensor value;
  Tensor grad;
  bool weight_decay = true;     // matrices decay; 1-d angles (LRPE θ) do not
  Shape global_shape;           // of the whole tensor, in the box's coordinates
  Shape offset;                 // where this rank's box starts
  Shape box_shape;              // the box; numel(box_shape) == value.numel()
  // False for a copy another rank also holds and updates identically (the
  // last stage's tied embedding under PP): the gradient norm counts it once.
  bool counted_in_norm = true;

  // Mixed precision: a copy of `value` in the compute dtype (bf16) that
  // forward and backward read; undefined when they read `value` itself.
  Tensor compute;

  const Tensor& weight() const { return compute.defined() ? compute : value; }
  Tensor value_box() const { return value.reshape(box_shape); }
  bool is_sharded() const { return box_shape != global_shape; }
};

// A box of a global tensor (all of it when offset is zero and box = global).
struct ShardBox {
  Shape global_shape;
  Shape offset;
  Shape box_shape;
  static ShardBox whole(const Shape& shape) { return {shape, Shape(shape.size(), 0), shape}; }
};

class ParameterSet {
 public:
  // Device::Meta: every parameter added is a meta tensor (shape and dtype, no
  // values drawn): the model the op plan runs (model/plan_model.h).
  explicit ParameterSet(Device build = Device::CPU) : build_(build) {}

  // Adds this rank's box of a global parameter initialised from N(0, std) drawn
  // by the counter RNG keyed by (seed, name, global element index): every
  // layout starts from bit-identical global weights. `local_shape` is how the
  // box is used (same element order).
  Parameter& add_normal(const std::string& name, const ShardBox& box, const Shape& local_shape,
                        DType dtype, uint64_t seed, double std);
  Parameter& add_normal(const std::string& name, const Shape& shape, DType dtype, uint64_t seed,
                        double std);
  // A parameter with given values (its box of the global tensor).
  Parameter& add_values(const std::string& name, const Tensor& value, bool weight_decay,
                        const ShardBox& box);
  Parameter& add_values(const std::string& name, const Tensor& value, bool weight_decay);
  // A parameter whose values `make` computes (its box of the global tensor,
  // of this shape and dtype); on Device::Meta they are never computed.
  Parameter& add_computed(const std::string& name, const Shape& shape, DType dtype,
                          bool weight_decay, const ShardBox& box,
                          const std::function<Tensor()>& make);

  Parameter& get(const std::string& name);
  const Parameter& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::deque<Parameter>& all() { return params_; }
  const std::deque<Parameter>& all() const { return params_; }

  // Moves values and gradients to `device` (dtypes unchanged); when
  // compute_dtype differs from a value's dtype, the parameter gets a compute
  // copy in it (Parameter::compute).
  void place(Device device, DType compute_dtype);
  // Rewrites the compute copies from the values (after every update or load).
  void refresh_compute();

  void zero_grad();
  int64_t numel() const;

 private:
  std::deque<Parameter> params_;  // deque: references stay valid as parameters are added
  Device build_;
};

}  // namespace linpar
