// Element types and devices a Tensor can hold.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace linpar {

enum class DType : uint8_t { F32, BF16, F64, I32 };
// Meta: a tensor's shape and dtype without data. The layers' forward and
// backward run on meta tensors to build the op plan (model/plan_model.h):
// every public op then counts what it would do and runs no kernel.
enum class Device : uint8_t { CPU, CUDA, Meta };

// bfloat16 storage type: the upper 16 bits of an IEEE f32. Conversion from f32
// rounds to nearest even, as cuda_bf16.h and PyTorch do.
struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  explicit bf16(float value) {
    uint32_t u;
    std::memcpy(&u, &value, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &u, sizeof value);
    return value;
  }
};

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return 4;
    case DType::BF16:
      return 2;
    case DType::F64:
      return 8;
    case DType::I32:
      return 4;
  }
  return 0;
}

std::string_view dtype_name(DType dtype);
DType dtype_from_name(std::string_view name);  // throws UserError on unknown names
std::string_view device_name(Device device);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::BF16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}

}  // namespace linpar
