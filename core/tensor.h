// Tensor: a contiguous, row-major n-d array of one dtype on one device.
// Storage is owned (RAII, through an Allocator) and shared between a tensor and
// its views; a view is a tensor with an offset into the same storage (views are
// taken along the leading dimension, or as a reshape of the whole tensor).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace linpar {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[2, 3, 4]"

// Owns one allocation; frees it when the last tensor referring to it dies.
class Storage {
 public:
  Storage(size_t bytes, Allocator& allocator);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return allocator_.device(); }

 private:
  void* data_;
  size_t bytes_;
  Allocator& allocator_;
};

class Tensor {
 public:
  Tensor() = default;  // an empty tensor: defined() is false

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::CPU);
  // Per-row statistics of activations (norm rstd, softmax max and sums): f32
  // on the GPU whatever the activations' dtype (bf16 sums lose the row), the
  // activations' own dtype on the CPU (f64 gradient checks stay f64). A meta
  // tensor plans either: f32, or f64 for f64 activations.
  static DType stats_dtype(DType activations, Device device) {
    if (device == Device::Meta) return activations == DType::F64 ? DType::F64 : DType::F32;
    return device == Device::CUDA ? DType::F32 : activations;
  }
  template <typename T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const;  // negative i counts from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_meta() const { return device_ == Device::Meta; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  void* raw_data() const;  // an internal error for a meta tensor (it has none)
  // Whether the two views start at the same byte of the same storage (an
  // op's output given as its input). Meta tensors share one storage that
  // holds nothing: any two of them alias.
  bool aliases(const Tensor& other) const {
    return storage_ == other.storage_ && offset_bytes_ == other.offset_bytes_;
  }
  // Typed access; checks that T matches the dtype (and that the tensor is on
  // the CPU when `host` access is asked for through data()).
  template <typename T>
  T* data() const {
    check_access(dtype_of<T>(), true);
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  T* device_data() const {
    check_access(dtype_of<T>(), false);
    return static_cast<T*>(raw_data());
  }

  // Views (share storage).
  Tensor slice0(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0
  Tensor select0(int64_t index) const;              // row `index`, one dim fewer
  Tensor reshape(const Shape& shape) const;         // same numel; -1 infers one dim

  // Copies.
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;          // converts element by element (GPU: via the host)
  void copy_from(const Tensor& source);  // same shape and dtype, any devices
  void fill_zero();

  template <typename T>
  std::vector<T> to_vector() const;

 private:
  void check_access(DType wanted, bool host) const;

  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

// While alive, the meta tensors created on this thread are counted: the
// bytes they would occupy, live and at their peak since the scope opened
// (views share their tensor's count). What the op plan's run allocates is
// then the memory the model's code would (model/plan_model.h,
// plan_memory). Outside such a scope meta tensors are not counted.
class MetaMemory {
 public:
  MetaMemory();
  ~MetaMemory();
  MetaMemory(const MetaMemory&) = delete;
  MetaMemory& operator=(const MetaMemory&) = delete;

  int64_t live() const;  // bytes of the meta tensors alive now (created in the scope)
  int64_t peak() const;  // the most that were alive at once since reset_peak()
  void reset_peak();

 private:
  bool outer_;
  int64_t base_;
};

template <typename T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  LINPAR_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()),
               "shape {} holds {} values, got {}", shape_string(shape), shape_numel(shape),
               values.size());
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = device_ == Device::CPU ? *this : to(Device::CPU);
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel_);
}

}  // namespace linpar
