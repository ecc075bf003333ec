// The safetensors format (HuggingFace): u64 little-endian header length N, N
// bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, optional
// "__metadata__": {str: str}}, then the data buffer (little-endian, C order;
// offsets relative to the buffer). A small strict reader and writer, so that
// released TransNormerLLM weights load without Python.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace linpar {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "F64", "I32", "I64", ...
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data buffer
};

class SafetensorsReader {
 public:
  // Opens and validates the header; UserError naming the file and the problem.
  explicit SafetensorsReader(const std::string& path);

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // UserError if absent
  // One tensor (read from its offsets only), converted to dtype (F32, F64 or
  // BF16); F16, BF16, F32 and F64 on disk are accepted.
  Tensor read(const std::string& name, DType dtype) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsWriter {
 public:
  // disk_dtype: "F32", "F64", "BF16" or "F16".
  void add(const std::string& name, const Tensor& tensor, const std::string& disk_dtype);
  void set_metadata(const std::string& key, const std::string& value);
  // Writes path + ".tmp" and renames it, so the final name never holds half a file.
  void write(const std::string& path) const;

 private:
  struct Item {
    std::string name, dtype;
    Shape shape;
    std::string bytes;
  };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

// IEEE half <-> float (exact for every half value, round-to-nearest-even back).
float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);

}  // namespace linpar
