// HDF5 (C API) files for checkpoints: RAII handles, tensors stored as shards of
// a global tensor (attributes global_shape and global_offset on each dataset),
// slice reads so any layout can assemble its shard from another layout's
// files, and scalar/array attributes on the root group.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace linpar {

// An hid_t with its close function; movable, not copyable.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {  // close errors are ignored: this runs in destructors
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

class Hdf5File {
 public:
  static Hdf5File create(const std::string& path);  // truncates
  // UserError naming the path if missing, truncated, corrupt or not HDF5.
  static Hdf5File open_read(const std::string& path);

  const std::string& path() const { return path_; }

  // `shard` holds the block [offset, offset + shard.shape) of a tensor whose
  // full shape is global_shape. Names may contain '/' (groups are created).
  // Stored in the tensor's dtype (BF16 as uint16 bits with attribute dtype="bf16")
  // with int64 attributes global_shape and global_offset.
  void write_shard(const std::string& name, const Tensor& shard, const Shape& global_shape,
                   const Shape& offset);
  void write_tensor(const std::string& name, const Tensor& tensor);  // offset 0, global = shape

  bool has(const std::string& name) const;
  std::vector<std::string> dataset_names() const;  // recursive, sorted, no leading '/'

  struct ShardInfo {
    Shape shard_shape, global_shape, offset;
    DType dtype = DType::F32;
  };
  ShardInfo info(const std::string& name) const;  // UserError if missing or malformed
  Tensor read(const std::string& name) const;     // the whole stored shard

  // Copies the part of this file's shard overlapping the global box
  // [begin, begin + count) into `out` (shape = count, the dataset's dtype) at
  // the matching place; returns the number of elements copied. Only the
  // overlapping rectangle is read from disk (hyperslab selections).
  int64_t read_overlap(const std::string& name, const Shape& begin, const Shape& count,
                       Tensor& out) const;

  // Attributes on the root group; setting an existing key replaces it.
  void set_attr(const std::string& key, const std::string& value);
  void set_attr(const std::string& key, int64_t value);
  void set_attr(const std::string& key, double value);
  void set_attr(const std::string& key, const std::vector<int64_t>& values);
  void set_attr(const std::string& key, const std::vector<double>& values);
  // Readers throw UserError if the key is missing or holds another kind.
  bool has_attr(const std::string& key) const;
  std::string attr_string(const std::string& key) const;
  int64_t attr_int(const std::string& key) const;
  double attr_double(const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;
  std::vector<double> attr_doubles(const std::string& key) const;

  void flush();

 private:
  Hdf5File(std::string path, H5Handle file) : path_(std::move(path)), file_(std::move(file)) {}
  hid_t id() const;  // the file handle, with HDF5's error printing off on this thread
  std::string path_;
  H5Handle file_;
};

// Assembles the box [begin, begin + count) of global tensor `name` from shard
// files (e.g. every rank file of the saved layout), converted to `dtype`.
// Identical shards (replicas) are read once. UserError if the files do not
// cover the box, disagree on the global shape or dtype, or hold partly
// overlapping shards.
Tensor read_global_box(const std::vector<const Hdf5File*>& files, const std::string& name,
                       const Shape& begin, const Shape& count, DType dtype);

}  // namespace linpar
