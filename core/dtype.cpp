#include "core/dtype.h"

#include "core/error.h"

namespace linpar {

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "f32";
    case DType::BF16:
      return "bf16";
    case DType::F64:
      return "f64";
    case DType::I32:
      return "i32";
  }
  return "?";
}

DType dtype_from_name(std::string_view name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "f64") return DType::F64;
  if (name == "i32") return DType::I32;
  user_error("unknown dtype '{}': expected f32, bf16, f64 or i32", name);
}

std::string_view device_name(Device device) {
  switch (device) {
    case Device::CPU:
      return "cpu";
    case Device::CUDA:
      return "cuda";
    case Device::Meta:
      return "meta";
  }
  return "?";
}

}  // namespace linpar
