#include "core/hdf5_file.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace linpar {

namespace {

// HDF5 prints its error stack to stderr by default; linpar reports errors
// itself. Debian's libhdf5 is thread-safe, where this setting is per thread, so
// every thread that touches a file switches it off once.
void silence_hdf5() {
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return H5T_IEEE_F32LE;
    case DType::F64:
      return H5T_IEEE_F64LE;
    case DType::I32:
      return H5T_STD_I32LE;
    case DType::BF16:
      return H5T_STD_U16LE;  // raw bf16 bits; HDF5 has no bf16 type
  }
  return H5T_IEEE_F32LE;
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return H5T_NATIVE_FLOAT;
    case DType::F64:
      return H5T_NATIVE_DOUBLE;
    case DType::I32:
      return H5T_NATIVE_INT32;
    case DType::BF16:
      return H5T_NATIVE_UINT16;
  }
  return H5T_NATIVE_FLOAT;
}

std::vector<hsize_t> to_hsize(const Shape& shape) {
  return std::vector<hsize_t>(shape.begin(), shape.end());
}

// A dataspace of `shape`; rank 0 is a scalar.
H5Handle make_space(const Shape& shape) {
  if (shape.empty()) return H5Handle(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  const auto dims = to_hsize(shape);
  return H5Handle(H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)),
                  H5Sclose);
}

// A 1-d dataspace of n elements; n = 0 is the null dataspace (no elements).
H5Handle make_array_space(size_t n) {
  if (n == 0) return H5Handle(H5_CHECK(H5Screate(H5S_NULL)), H5Sclose);
  const hsize_t dims = n;
  return H5Handle(H5_CHECK(H5Screate_simple(1, &dims, nullptr)), H5Sclose);
}

// Creates attribute `key` on `object`, replacing an existing one.
H5Handle create_attr(hid_t object, const std::string& key, hid_t type, hid_t space) {
  if (H5_CHECK(H5Aexists(object, key.c_str())) > 0) H5_CHECK(H5Adelete(object, key.c_str()));
  return H5Handle(H5_CHECK(H5Acreate2(object, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT)),
                  H5Aclose);
}

void write_string_attr(hid_t object, const std::string& key, const std::string& value) {
  // Fixed length with the terminating NUL stored too, as h5py and h5dump expect.
  H5Handle type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), value.size() + 1));
  H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLTERM));
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr = create_attr(object, key, type.get(), scalar.get());
  H5_CHECK(H5Awrite(attr.get(), type.get(), value.c_str()));
}

template <typename T>
void write_array_attr(hid_t object, const std::string& key, hid_t stored, hid_t native,
                      const std::vector<T>& values) {
  H5Handle space = make_array_space(values.size());
  H5Handle attr = create_attr(object, key, stored, space.get());
  if (!values.empty()) H5_CHECK(H5Awrite(attr.get(), native, values.data()));
}

// `where` names the file (and dataset) for error messages.
H5Handle open_attr(hid_t object, const std::string& key, const std::string& where) {
  if (H5_CHECK(H5Aexists(object, key.c_str())) <= 0)
    user_error("{}: attribute {} is missing", where, key);
  return H5Handle(H5_CHECK(H5Aopen(object, key.c_str(), H5P_DEFAULT)), H5Aclose);
}

H5T_class_t attr_class(hid_t attr) {
  H5Handle type(H5_CHECK(H5Aget_type(attr)), H5Tclose);
  return H5_CHECK(H5Tget_class(type.get()));
}

int64_t attr_points(hid_t attr) {
  H5Handle space(H5_CHECK(H5Aget_space(attr)), H5Sclose);
  return H5_CHECK(H5Sget_simple_extent_npoints(space.get()));
}

std::string read_string_attr(hid_t object, const std::string& key, const std::string& where) {
  H5Handle attr = open_attr(object, key, where);
  if (attr_class(attr.get()) != H5T_STRING || attr_points(attr.get()) != 1) {
    user_error("{}: attribute {} is not a string", where, key);
  }
  H5Handle type(H5_CHECK(H5Aget_type(attr.get())), H5Tclose);
  H5Handle memory(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  std::string value;
  if (H5_CHECK(H5Tis_variable_str(type.get())) > 0) {  // as other tools (h5py) write strings
    H5_CHECK(H5Tset_size(memory.get(), H5T_VARIABLE));
    char* text = nullptr;
    H5_CHECK(H5Aread(attr.get(), memory.get(), &text));
    value = text != nullptr ? text : "";
    H5free_memory(text);
  } else {
    const size_t size = H5Tget_size(type.get());
    LINPAR_CHECK(size > 0, "{}: attribute {} has no size", where, key);
    value.assign(size + 1, '\0');  // room for the NUL that NULLTERM conversion adds
    H5_CHECK(H5Tset_size(memory.get(), size + 1));
    H5_CHECK(H5Aread(attr.get(), memory.get(), value.data()));
    value.resize(value.find('\0'));
  }
  return value;
}

std::vector<int64_t> read_int_array_attr(hid_t object, const std::string& key,
                                         const std::string& where) {
  H5Handle attr = open_attr(object, key, where);
  if (attr_class(attr.get()) != H5T_INTEGER)
    user_error("{}: attribute {} is not an integer", where, key);
  std::vector<int64_t> values(static_cast<size_t>(attr_points(attr.get())));
  if (!values.empty()) H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()));
  return values;
}

std::vector<double> read_double_array_attr(hid_t object, const std::string& key,
                                           const std::string& where) {
  H5Handle attr = open_attr(object, key, where);
  const H5T_class_t type_class = attr_class(attr.get());
  // Integers convert to double exactly enough for hyperparameters; strings do not.
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER)
    user_error("{}: attribute {} is not a number", where, key);
  std::vector<double> values(static_cast<size_t>(attr_points(attr.get())));
  if (!values.empty()) H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()));
  return values;
}

// The intersection of boxes [a, a + a_count) and [b, b + b_count): start and
// extent per dimension; false if empty.
bool intersect(const Shape& a, const Shape& a_count, const Shape& b, const Shape& b_count,
               Shape& start, Shape& extent) {
  start.resize(a.size());
  extent.resize(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t lo = std::max(a[i], b[i]);
    const int64_t hi = std::min(a[i] + a_count[i], b[i] + b_count[i]);
    if (hi <= lo) return false;
    start[i] = lo;
    extent[i] = hi - lo;
  }
  return true;
}

}  // namespace

hid_t Hdf5File::id() const {
  silence_hdf5();
  return file_.get();
}

Hdf5File Hdf5File::create(const std::string& path) {
  silence_hdf5();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) user_error("checkpoint file {}: cannot create it ({})", path, hdf5_error_string());
  return Hdf5File(path, H5Handle(id, H5Fclose));
}

Hdf5File Hdf5File::open_read(const std::string& path) {
  silence_hdf5();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    user_error("checkpoint file {}: no such file", path);
  // HDF5 checks the signature and compares the stored end-of-file address with
  // the file size, so foreign and truncated files fail here.
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0)
    user_error("checkpoint file {}: not a readable HDF5 file ({})", path, hdf5_error_string());
  return Hdf5File(path, H5Handle(id, H5Fclose));
}

void Hdf5File::write_shard(const std::string& name, const Tensor& shard, const Shape& global_shape,
                           const Shape& offset) {
  // A GPU tensor is written from a host copy.
  if (shard.defined() && shard.device() != Device::CPU) {
    write_shard(name, shard.to(Device::CPU), global_shape, offset);
    return;
  }
  // shard: [s0, s1, ...] is global[o0:o0+s0, o1:o1+s1, ...] of a global_shape tensor.
  LINPAR_CHECK(shard.defined(), "write_shard {}: no tensor", name);
  const Shape& shape = shard.shape();
  LINPAR_CHECK(global_shape.size() == shape.size() && offset.size() == shape.size(),
               "write_shard {}: shard {} global {} offset {}", name, shape_string(shape),
               shape_string(global_shape), shape_string(offset));
  for (size_t i = 0; i < shape.size(); ++i) {
    LINPAR_CHECK(offset[i] >= 0 && offset[i] + shape[i] <= global_shape[i],
                 "write_shard {}: shard {} at {} outside global {}", name, shape_string(shape),
                 shape_string(offset), shape_string(global_shape));
  }
  LINPAR_CHECK(!name.empty() && !has(name), "write_shard {}: dataset exists already in {}", name,
               path_);
  H5Handle space = make_space(shape);
  H5Handle link_props(H5_CHECK(H5Pcreate(H5P_LINK_CREATE)), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(link_props.get(), 1));
  H5Handle dataset(H5_CHECK(H5Dcreate2(id(), name.c_str(), file_type(shard.dtype()), space.get(),
                                       link_props.get(), H5P_DEFAULT, H5P_DEFAULT)),
                   H5Dclose);
  if (shard.numel() > 0) {
    H5_CHECK(H5Dwrite(dataset.get(), memory_type(shard.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      shard.raw_data()));
  }
  write_array_attr(dataset.get(), "global_shape", H5T_STD_I64LE, H5T_NATIVE_INT64, global_shape);
  write_array_attr(dataset.get(), "global_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, offset);
  if (shard.dtype() == DType::BF16) write_string_attr(dataset.get(), "dtype", "bf16");
}

void Hdf5File::write_tensor(const std::string& name, const Tensor& tensor) {
  write_shard(name, tensor, tensor.shape(), Shape(tensor.shape().size(), 0));
}

bool Hdf5File::has(const std::string& name) const {
  if (name.empty()) return false;
  // Walk the path one link at a time: H5Lexists fails on a missing parent. A
  // failure (a parent that is a dataset) also means "no such dataset".
  size_t position = 0;
  while (true) {
    const size_t slash = name.find('/', position);
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    if (slash == std::string::npos) break;
    position = slash + 1;
  }
  const hid_t object = H5Oopen(id(), name.c_str(), H5P_DEFAULT);
  if (object < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  const bool is_dataset = H5Iget_type(object) == H5I_DATASET;
  H5Oclose(object);
  return is_dataset;
}

std::vector<std::string> Hdf5File::dataset_names() const {
  std::vector<std::string> names;
  auto visit = [](hid_t group, const char* name, const H5L_info_t* link, void* data) -> herr_t {
    if (link->type != H5L_TYPE_HARD) return 0;  // soft and external links are not ours
    const hid_t object = H5Oopen(group, name, H5P_DEFAULT);
    if (object < 0) return -1;
    if (H5Iget_type(object) == H5I_DATASET)
      static_cast<std::vector<std::string>*>(data)->push_back(name);
    H5Oclose(object);
    return 0;
  };
  if (H5Lvisit(id(), H5_INDEX_NAME, H5_ITER_INC, visit, &names) < 0) {
    user_error("checkpoint file {}: cannot list its datasets ({})", path_, hdf5_error_string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Hdf5File::ShardInfo Hdf5File::info(const std::string& name) const {
  const std::string where = fmt::format("checkpoint file {}: dataset {}", path_, name);
  if (!has(name)) user_error("checkpoint file {}: dataset {} is missing", path_, name);
  const hid_t dataset_id = H5Dopen2(id(), name.c_str(), H5P_DEFAULT);
  if (dataset_id < 0) user_error("{}: cannot open it ({})", where, hdf5_error_string());
  H5Handle dataset(dataset_id, H5Dclose);
  ShardInfo info;
  H5Handle space(H5_CHECK(H5Dget_space(dataset.get())), H5Sclose);
  const int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  info.shard_shape.assign(dims.begin(), dims.end());
  info.global_shape = read_int_array_attr(dataset.get(), "global_shape", where);
  info.offset = read_int_array_attr(dataset.get(), "global_offset", where);
  bool consistent = info.global_shape.size() == dims.size() && info.offset.size() == dims.size();
  for (size_t i = 0; consistent && i < dims.size(); ++i) {
    consistent =
        info.offset[i] >= 0 && info.offset[i] + info.shard_shape[i] <= info.global_shape[i];
  }
  if (!consistent) {
    user_error("{}: shard {} at offset {} does not fit its global shape {}", where,
               shape_string(info.shard_shape), shape_string(info.offset),
               shape_string(info.global_shape));
  }
  H5Handle type(H5_CHECK(H5Dget_type(dataset.get())), H5Tclose);
  const H5T_class_t type_class = H5_CHECK(H5Tget_class(type.get()));
  const size_t size = H5Tget_size(type.get());
  const bool is_signed =
      type_class == H5T_INTEGER && H5_CHECK(H5Tget_sign(type.get())) == H5T_SGN_2;
  if (type_class == H5T_FLOAT && size == 4) {
    info.dtype = DType::F32;
  } else if (type_class == H5T_FLOAT && size == 8) {
    info.dtype = DType::F64;
  } else if (type_class == H5T_INTEGER && size == 4 && is_signed) {
    info.dtype = DType::I32;
  } else if (type_class == H5T_INTEGER && size == 2 && !is_signed &&
             H5_CHECK(H5Aexists(dataset.get(), "dtype")) > 0 &&
             read_string_attr(dataset.get(), "dtype", where) == "bf16") {
    info.dtype = DType::BF16;
  } else {
    user_error("{}: unsupported element type (HDF5 class {}, {} bytes)", where,
               static_cast<int>(type_class), size);
  }
  return info;
}

Tensor Hdf5File::read(const std::string& name) const {
  // -> [shard_shape] in the stored dtype
  const ShardInfo shard = info(name);
  Tensor out = Tensor::empty(shard.shard_shape, shard.dtype);
  read_overlap(name, shard.offset, shard.shard_shape, out);
  return out;
}

int64_t Hdf5File::read_overlap(const std::string& name, const Shape& begin, const Shape& count,
                               Tensor& out) const {
  // out: [count] = global[begin : begin + count], filled where this shard overlaps it.
  const ShardInfo shard = info(name);
  const size_t rank = shard.shard_shape.size();
  if (begin.size() != rank || count.size() != rank) {
    user_error("checkpoint file {}: dataset {} has rank {}, asked for box {} at {}", path_, name,
               rank, shape_string(count), shape_string(begin));
  }
  if (!out.defined() || out.device() != Device::CPU || out.dtype() != shard.dtype ||
      out.shape() != count) {
    user_error("checkpoint file {}: dataset {} holds {} elements, asked to read into {} {}", path_,
               name, dtype_name(shard.dtype), out.defined() ? dtype_name(out.dtype()) : "nothing",
               shape_string(count));
  }
  Shape start, extent;
  if (!intersect(begin, count, shard.offset, shard.shard_shape, start, extent)) return 0;
  H5Handle dataset(H5_CHECK(H5Dopen2(id(), name.c_str(), H5P_DEFAULT)), H5Dclose);
  H5Handle file_space(H5_CHECK(H5Dget_space(dataset.get())), H5Sclose);
  H5Handle memory_space = make_space(count);
  if (rank > 0) {  // a scalar is read whole
    std::vector<hsize_t> file_start(rank), memory_start(rank);
    for (size_t i = 0; i < rank; ++i) {
      file_start[i] = static_cast<hsize_t>(start[i] - shard.offset[i]);
      memory_start[i] = static_cast<hsize_t>(start[i] - begin[i]);
    }
    const auto dims = to_hsize(extent);
    H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, file_start.data(), nullptr,
                                 dims.data(), nullptr));
    H5_CHECK(H5Sselect_hyperslab(memory_space.get(), H5S_SELECT_SET, memory_start.data(), nullptr,
                                 dims.data(), nullptr));
  }
  if (H5Dread(dataset.get(), memory_type(out.dtype()), memory_space.get(), file_space.get(),
              H5P_DEFAULT, out.raw_data()) < 0) {
    user_error("checkpoint file {}: cannot read dataset {} ({})", path_, name, hdf5_error_string());
  }
  return shape_numel(extent);
}

void Hdf5File::set_attr(const std::string& key, const std::string& value) {
  write_string_attr(id(), key, value);
}

void Hdf5File::set_attr(const std::string& key, int64_t value) {
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr = create_attr(id(), key, H5T_STD_I64LE, scalar.get());
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value));
}

void Hdf5File::set_attr(const std::string& key, double value) {
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr = create_attr(id(), key, H5T_IEEE_F64LE, scalar.get());
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value));
}

void Hdf5File::set_attr(const std::string& key, const std::vector<int64_t>& values) {
  write_array_attr(id(), key, H5T_STD_I64LE, H5T_NATIVE_INT64, values);
}

void Hdf5File::set_attr(const std::string& key, const std::vector<double>& values) {
  write_array_attr(id(), key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values);
}

bool Hdf5File::has_attr(const std::string& key) const {
  return H5_CHECK(H5Aexists(id(), key.c_str())) > 0;
}

std::string Hdf5File::attr_string(const std::string& key) const {
  return read_string_attr(id(), key, "checkpoint file " + path_);
}

int64_t Hdf5File::attr_int(const std::string& key) const {
  const auto values = attr_ints(key);
  if (values.size() != 1)
    user_error("checkpoint file {}: attribute {} is not a single integer", path_, key);
  return values[0];
}

double Hdf5File::attr_double(const std::string& key) const {
  const auto values = attr_doubles(key);
  if (values.size() != 1)
    user_error("checkpoint file {}: attribute {} is not a single number", path_, key);
  return values[0];
}

std::vector<int64_t> Hdf5File::attr_ints(const std::string& key) const {
  return read_int_array_attr(id(), key, "checkpoint file " + path_);
}

std::vector<double> Hdf5File::attr_doubles(const std::string& key) const {
  return read_double_array_attr(id(), key, "checkpoint file " + path_);
}

void Hdf5File::flush() { H5_CHECK(H5Fflush(id(), H5F_SCOPE_GLOBAL)); }

Tensor read_global_box(const std::vector<const Hdf5File*>& files, const std::string& name,
                       const Shape& begin, const Shape& count, DType dtype) {
  // -> [count] = global[begin : begin + count] in `dtype`
  struct Piece {
    const Hdf5File* file;
    Hdf5File::ShardInfo info;
    Shape start, extent;  // the part of the box this shard holds
  };
  std::vector<Piece> pieces;
  const Hdf5File* first = nullptr;
  Hdf5File::ShardInfo reference;
  for (const Hdf5File* file : files) {
    if (!file->has(name)) continue;
    Hdf5File::ShardInfo info = file->info(name);
    if (first == nullptr) {
      first = file;
      reference = info;
    } else if (info.global_shape != reference.global_shape || info.dtype != reference.dtype) {
      user_error("checkpoint: dataset {} is {} {} in {} but {} {} in {}", name,
                 dtype_name(reference.dtype), shape_string(reference.global_shape), first->path(),
                 dtype_name(info.dtype), shape_string(info.global_shape), file->path());
    }
    // Replicated shards (e.g. data-parallel copies) hold the same block; read it once.
    const bool replica = std::any_of(pieces.begin(), pieces.end(), [&](const Piece& p) {
      return p.info.offset == info.offset && p.info.shard_shape == info.shard_shape;
    });
    if (!replica) pieces.push_back({file, std::move(info), {}, {}});
  }
  if (first == nullptr)
    user_error("checkpoint: none of the {} shard files holds dataset {}", files.size(), name);
  const Shape& global = reference.global_shape;
  bool inside = begin.size() == global.size() && count.size() == global.size();
  for (size_t i = 0; inside && i < global.size(); ++i) {
    inside = begin[i] >= 0 && count[i] >= 0 && begin[i] + count[i] <= global[i];
  }
  if (!inside) {
    user_error("checkpoint ({}): box {} at {} lies outside dataset {} of shape {}", first->path(),
               shape_string(count), shape_string(begin), name, shape_string(global));
  }

  // Keep the shards that overlap the box; valid layouts tile the tensor, so
  // distinct shards never overlap each other and their volumes add up.
  std::vector<Piece> overlapping;
  for (Piece& p : pieces) {
    if (intersect(begin, count, p.info.offset, p.info.shard_shape, p.start, p.extent))
      overlapping.push_back(std::move(p));
  }
  pieces = std::move(overlapping);
  int64_t covered = 0;
  Shape start, extent;
  for (size_t a = 0; a < pieces.size(); ++a) {
    covered += shape_numel(pieces[a].extent);
    for (size_t b = 0; b < a; ++b) {
      if (intersect(pieces[a].start, pieces[a].extent, pieces[b].start, pieces[b].extent, start,
                    extent)) {
        user_error("checkpoint: shards of {} overlap: {} at {} in {} and {} at {} in {}", name,
                   shape_string(pieces[a].info.shard_shape), shape_string(pieces[a].info.offset),
                   pieces[a].file->path(), shape_string(pieces[b].info.shard_shape),
                   shape_string(pieces[b].info.offset), pieces[b].file->path());
      }
    }
  }
  const int64_t wanted = shape_numel(count);
  if (covered != wanted) {
    user_error(
        "checkpoint ({} and {} other files): the shards of {} cover {} of the {} elements of box "
        "{} at {}",
        first->path(), files.size() - 1, name, covered, wanted, shape_string(count),
        shape_string(begin));
  }
  Tensor out = Tensor::zeros(count, reference.dtype);
  for (const Piece& p : pieces) p.file->read_overlap(name, begin, count, out);
  return out.dtype() == dtype ? out : out.to(dtype);
}

}  // namespace linpar
