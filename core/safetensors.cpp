#include "core/safetensors.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace linpar {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

size_t element_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero and subnormals
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, sizeof bits);
  bits |= sign;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float magnitude = std::fabs(value);
  if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (magnitude >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to infinity
  if (magnitude < std::ldexp(1.0f, -14)) {
    // Subnormal: units of 2^-24, round to nearest even.
    const float units = magnitude * std::ldexp(1.0f, 24);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(units)));
  }
  int exponent;
  const float fraction =
      std::frexp(magnitude, &exponent);  // magnitude = fraction · 2^exponent, fraction in [0.5, 1)
  const float scaled = std::nearbyint(fraction * 2048.0f);  // 11 significant bits, ties to even
  uint32_t mantissa = static_cast<uint32_t>(scaled);
  int biased = exponent + 14;
  if (mantissa == 2048) {  // rounding carried into the next binade
    mantissa = 1024;
    ++biased;
  }
  if (biased >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | (biased << 10) | (mantissa & 0x3ffu));
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("safetensors file {}: cannot open it", path);
  const uint64_t file_size = fs::file_size(path);
  if (file_size < 8)
    user_error("safetensors file {}: {} bytes, too short for the header length", path, file_size);
  uint64_t header_bytes = 0;
  in.read(reinterpret_cast<char*>(&header_bytes), 8);
  if (header_bytes > kMaxHeaderBytes || header_bytes > file_size - 8) {
    user_error("safetensors file {}: header length {} exceeds the file ({} bytes) or 100 MB", path,
               header_bytes, file_size);
  }
  std::string header(header_bytes, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_bytes));
  data_start_ = 8 + header_bytes;
  const uint64_t data_bytes = file_size - data_start_;
  nlohmann::json json = nlohmann::json::parse(header, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    user_error("safetensors file {}: the header is not a JSON object", path);
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) user_error("safetensors file {}: __metadata__ is not an object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          user_error("safetensors file {}: metadata {} is not a string", path, m.key());
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const auto& value = *it;
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets") || !value["dtype"].is_string() ||
        !value["shape"].is_array() || !value["data_offsets"].is_array() ||
        value["data_offsets"].size() != 2) {
      user_error("safetensors file {}: entry {} needs dtype, shape and data_offsets [begin, end]",
                 path, it.key());
    }
    SafetensorsEntry entry;
    entry.name = it.key();
    entry.dtype = value["dtype"].get<std::string>();
    const size_t width = element_bytes(entry.dtype);
    if (width == 0)
      user_error("safetensors file {}: entry {} has unknown dtype {}", path, entry.name,
                 entry.dtype);
    uint64_t elements = 1;
    for (const auto& d : value["shape"]) {
      if (!d.is_number_unsigned())
        user_error("safetensors file {}: entry {} has a bad shape", path, entry.name);
      entry.shape.push_back(d.get<int64_t>());
      elements *= d.get<uint64_t>();
    }
    entry.begin = value["data_offsets"][0].get<uint64_t>();
    entry.end = value["data_offsets"][1].get<uint64_t>();
    if (entry.end < entry.begin || entry.end - entry.begin != elements * width) {
      user_error("safetensors file {}: entry {} has data_offsets [{}, {}] for {} elements of {}",
                 path, entry.name, entry.begin, entry.end, elements, entry.dtype);
    }
    if (entry.end > data_bytes) {
      user_error(
          "safetensors file {}: entry {} ends at byte {} of a {}-byte buffer (truncated file?)",
          path, entry.name, entry.end, data_bytes);
    }
    entries_.push_back(std::move(entry));
  }
  // File order = buffer order; overlapping ranges mean a corrupt file.
  std::sort(entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries_.size(); ++i) {
    if (entries_[i].begin < entries_[i - 1].end) {
      user_error("safetensors file {}: entries {} and {} overlap", path, entries_[i - 1].name,
                 entries_[i].name);
    }
  }
}

bool SafetensorsReader::contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const auto& e) { return e.name == name; });
}

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return e;
  }
  user_error("safetensors file {}: no tensor named {}", path_, name);
}

Tensor SafetensorsReader::read(const std::string& name, DType dtype) const {
  const SafetensorsEntry& e = entry(name);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  std::string bytes(e.end - e.begin, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) user_error("safetensors file {}: cannot read {}", path_, name);
  const int64_t n = shape_numel(e.shape);
  Tensor f64 = Tensor::empty(e.shape, DType::F64);
  double* out = f64.data<double>();
  const char* p = bytes.data();
  for (int64_t i = 0; i < n; ++i) {
    if (e.dtype == "F32") {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = v;
    } else if (e.dtype == "F64") {
      std::memcpy(&out[i], p + 8 * i, 8);
    } else if (e.dtype == "BF16") {
      bf16 v;
      std::memcpy(&v.bits, p + 2 * i, 2);
      out[i] = static_cast<float>(v);
    } else if (e.dtype == "F16") {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = half_to_float(v);
    } else {
      user_error("safetensors file {}: {} is {}, not a floating-point tensor", path_, name,
                 e.dtype);
    }
  }
  // BF16/F16 -> f64 -> target is exact for every target at least as wide.
  return dtype == DType::F64 ? f64 : f64.to(dtype);
}

void SafetensorsWriter::add(const std::string& name, const Tensor& tensor,
                            const std::string& disk_dtype) {
  for (const Item& item : items_) {
    if (item.name == name) user_error("safetensors: tensor {} added twice", name);
  }
  Tensor values = tensor.device() == Device::CPU ? tensor : tensor.to(Device::CPU);
  Tensor f64 = values.to(DType::F64);
  const double* v = f64.data<double>();
  Item item{name, disk_dtype, tensor.shape(), {}};
  const int64_t n = f64.numel();
  auto append = [&](const void* src, size_t bytes) {
    item.bytes.append(static_cast<const char*>(src), bytes);
  };
  for (int64_t i = 0; i < n; ++i) {
    if (disk_dtype == "F32") {
      const float x = static_cast<float>(v[i]);
      append(&x, 4);
    } else if (disk_dtype == "F64") {
      append(&v[i], 8);
    } else if (disk_dtype == "BF16") {
      const bf16 x(static_cast<float>(v[i]));
      append(&x.bits, 2);
    } else if (disk_dtype == "F16") {
      const uint16_t x = float_to_half(static_cast<float>(v[i]));
      append(&x, 2);
    } else {
      user_error("safetensors: cannot write dtype {} (expected F32, F64, BF16 or F16)", disk_dtype);
    }
  }
  items_.push_back(std::move(item));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Item& item : items_) {
    header[item.name] = {{"dtype", item.dtype},
                         {"shape", item.shape},
                         {"data_offsets", {offset, offset + item.bytes.size()}}};
    offset += item.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // the buffer starts 8-byte aligned
  write_file_atomically(path, [&](std::ostream& out) {
    const uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Item& item : items_) {
      out.write(item.bytes.data(), static_cast<std::streamsize>(item.bytes.size()));
    }
  });
}

}  // namespace linpar
