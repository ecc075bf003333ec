#include "core/tensor.h"

#include <algorithm>
#include <cstring>

#include "core/cuda/cuda_runtime.h"

namespace linpar {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    LINPAR_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
    n *= d;
  }
  return n;
}

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Storage::Storage(size_t bytes, Allocator& allocator)
    : data_(allocator.allocate(bytes)), bytes_(bytes), allocator_(allocator) {}

Storage::~Storage() {
  if (data_ != nullptr) allocator_.deallocate(data_, bytes_);
}

namespace {
// Every meta tensor shares one storage that holds nothing: building the op
// plan allocates no memory for the activations it describes.
class MetaAllocator final : public Allocator {
 public:
  void* allocate(size_t) override { return nullptr; }
  void deallocate(void*, size_t) override {}
  Device device() const override { return Device::Meta; }
};
const std::shared_ptr<Storage>& meta_storage() {
  static MetaAllocator allocator;
  static const std::shared_ptr<Storage> storage = std::make_shared<Storage>(0, allocator);
  return storage;
}

// MetaMemory's counts: meta tensors made while a scope is open get their
// own storage, which adds its bytes when made and takes them off when freed
// (on this thread, where the plan runs).
thread_local bool counting_meta = false;
thread_local int64_t meta_live = 0, meta_peak = 0;
char meta_address;  // a counted meta storage's "data": never read (raw_data refuses)
class CountingMetaAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    meta_live += static_cast<int64_t>(bytes);
    meta_peak = std::max(meta_peak, meta_live);
    return &meta_address;
  }
  void deallocate(void*, size_t bytes) override { meta_live -= static_cast<int64_t>(bytes); }
  Device device() const override { return Device::Meta; }
};
std::shared_ptr<Storage> counted_meta_storage(size_t bytes) {
  static CountingMetaAllocator allocator;
  return std::make_shared<Storage>(bytes, allocator);
}
}  // namespace

MetaMemory::MetaMemory() : outer_(counting_meta), base_(meta_live) {
  counting_meta = true;
  meta_peak = meta_live;
}
MetaMemory::~MetaMemory() { counting_meta = outer_; }
int64_t MetaMemory::live() const { return meta_live - base_; }
int64_t MetaMemory::peak() const { return meta_peak - base_; }
void MetaMemory::reset_peak() { meta_peak = meta_live; }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  if (device == Device::Meta) {
    t.storage_ = counting_meta ? counted_meta_storage(t.nbytes()) : meta_storage();
  } else {
    t.storage_ = std::make_shared<Storage>(t.nbytes(), default_allocator(device));
  }
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_zero();
  return t;
}

int64_t Tensor::dim(int64_t i) const {
  int64_t n = ndim();
  if (i < 0) i += n;
  LINPAR_CHECK(i >= 0 && i < n, "dimension {} of a {}-d tensor", i, n);
  return shape_[static_cast<size_t>(i)];
}

void* Tensor::raw_data() const {
  if (!storage_) return nullptr;
  LINPAR_CHECK(device_ != Device::Meta, "a meta tensor {} has no data", shape_string(shape_));
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

void Tensor::check_access(DType wanted, bool host) const {
  LINPAR_CHECK(wanted == dtype_, "tensor holds {}, accessed as {}", dtype_name(dtype_),
               dtype_name(wanted));
  LINPAR_CHECK(!host || device_ == Device::CPU, "host access to a {} tensor", device_name(device_));
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  LINPAR_CHECK(ndim() >= 1, "slice0 of a scalar");
  LINPAR_CHECK(0 <= begin && begin <= end && end <= shape_[0], "slice [{}, {}) of dim {}", begin,
               end, shape_[0]);
  Tensor t = *this;
  int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.offset_bytes_ += static_cast<size_t>(begin * row) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::select0(int64_t index) const {
  Tensor t = slice0(index, index + 1);
  t.shape_.erase(t.shape_.begin());
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape resolved = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      LINPAR_CHECK(infer < 0, "reshape {} infers two dims", shape_string(shape));
      infer = static_cast<int>(i);
    } else {
      known *= resolved[i];
    }
  }
  if (infer >= 0) resolved[static_cast<size_t>(infer)] = known == 0 ? 0 : numel_ / known;
  LINPAR_CHECK(shape_numel(resolved) == numel_, "reshape {} -> {}", shape_string(shape_),
               shape_string(shape));
  Tensor t = *this;
  t.shape_ = resolved;
  return t;
}

Tensor Tensor::clone() const { return to(device_); }

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  if (device == Device::Meta) return t;  // the shape only
  t.copy_from(*this);
  return t;
}

namespace {
double as_double(float v) { return v; }
double as_double(double v) { return v; }
double as_double(int32_t v) { return v; }
double as_double(bf16 v) { return static_cast<float>(v); }

template <typename To>
To from_double(double v) {
  return static_cast<To>(v);
}
template <>
bf16 from_double<bf16>(double v) {
  return bf16(static_cast<float>(v));
}

template <typename From, typename To>
void convert(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = from_double<To>(as_double(s[i]));
}

template <typename From>
void convert_from(DType to, const void* src, void* dst, int64_t n) {
  switch (to) {
    case DType::F32:
      convert<From, float>(src, dst, n);
      break;
    case DType::F64:
      convert<From, double>(src, dst, n);
      break;
    case DType::BF16:
      convert<From, bf16>(src, dst, n);
      break;
    case DType::I32:
      convert<From, int32_t>(src, dst, n);
      break;
  }
}
}  // namespace

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  if (device_ == Device::Meta) return empty(shape_, dtype, device_);
  // On the GPU, through the host (hot paths use convert() in core/ops/elementwise.h).
  if (device_ != Device::CPU) return to(Device::CPU).to(dtype).to(device_);
  Tensor t = empty(shape_, dtype, device_);
  switch (dtype_) {
    case DType::F32:
      convert_from<float>(dtype, raw_data(), t.raw_data(), numel_);
      break;
    case DType::F64:
      convert_from<double>(dtype, raw_data(), t.raw_data(), numel_);
      break;
    case DType::BF16:
      convert_from<bf16>(dtype, raw_data(), t.raw_data(), numel_);
      break;
    case DType::I32:
      convert_from<int32_t>(dtype, raw_data(), t.raw_data(), numel_);
      break;
  }
  return t;
}

void Tensor::copy_from(const Tensor& source) {
  LINPAR_CHECK(source.shape_ == shape_ && source.dtype_ == dtype_, "copy {} {} into {} {}",
               dtype_name(source.dtype_), shape_string(source.shape_), dtype_name(dtype_),
               shape_string(shape_));
  if (nbytes() == 0) return;
  if (device_ == Device::Meta || source.device_ == Device::Meta) {
    LINPAR_CHECK(device_ == source.device_, "copy between a meta and a {} tensor",
                 device_name(device_ == Device::Meta ? source.device_ : device_));
    return;
  }
  if (device_ == Device::CPU && source.device_ == Device::CPU) {
    std::memcpy(raw_data(), source.raw_data(), nbytes());
  } else {
    cuda::copy_bytes(raw_data(), device_, source.raw_data(), source.device_, nbytes());
  }
}

void Tensor::fill_zero() {
  if (nbytes() == 0 || device_ == Device::Meta) return;
  if (device_ == Device::CPU) {
    std::memset(raw_data(), 0, nbytes());
  } else {
    cuda::memset_zero(raw_data(), nbytes());
  }
}

}  // namespace linpar
