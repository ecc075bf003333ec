#include "core/hdf5_file.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"

namespace linpar {

namespace {

// HDF5 prints its error stack to stderr by default; linpar reports errors itself.
void silence_hdf5() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return H5T_NATIVE_FLOAT;
    case DType::F64: return H5T_NATIVE_DOUBLE;
    case DType::I32: return H5T_NATIVE_INT32;
    case DType::BF16: return H5T_NATIVE_UINT16;  // raw bf16 bits; the dtype attribute says so
  }
  return H5T_NATIVE_FLOAT;
}

std::vector<hsize_t> to_hsize(const Shape& shape) { return std::vector<hsize_t>(shape.begin(), shape.end()); }

void write_int_array_attr(hid_t object, const char* key, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  H5Handle space(H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  H5Handle attr(H5_CHECK(H5Acreate2(object, key, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  if (n > 0) H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()));
}

std::vector<int64_t> read_int_array_attr(hid_t object, const char* key) {
  H5Handle attr(H5_CHECK(H5Aopen(object, key, H5P_DEFAULT)), H5Aclose);
  H5Handle space(H5_CHECK(H5Aget_space(attr.get())), H5Sclose);
  const hssize_t n = H5_CHECK(H5Sget_simple_extent_npoints(space.get()));
  std::vector<int64_t> values(static_cast<size_t>(n));
  if (n > 0) H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()));
  return values;
}

std::string read_string_attr(hid_t object, const char* key) {
  H5Handle attr(H5_CHECK(H5Aopen(object, key, H5P_DEFAULT)), H5Aclose);
  H5Handle type(H5_CHECK(H5Aget_type(attr.get())), H5Tclose);
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  H5Handle memory(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(memory.get(), size));
  H5_CHECK(H5Aread(attr.get(), memory.get(), value.data()));
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

}  // namespace

Hdf5File Hdf5File::create(const std::string& path) {
  silence_hdf5();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) user_error("cannot create HDF5 file {}: {}", path, hdf5_error_string());
  return Hdf5File(path, H5Handle(id, H5Fclose));
}

Hdf5File Hdf5File::open_read(const std::string& path) {
  silence_hdf5();
  if (!std::filesystem::exists(path)) user_error("checkpoint file {}: no such file", path);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) user_error("checkpoint file {}: not a readable HDF5 file ({})", path, hdf5_error_string());
  return Hdf5File(path, H5Handle(id, H5Fclose));
}

void Hdf5File::write_shard(const std::string& name, const Tensor& shard, const Shape& global_shape,
                           const Shape& offset) {
  LINPAR_CHECK(shard.device() == Device::CPU, "write_shard {}: tensor on {}", name, device_name(shard.device()));
  LINPAR_CHECK(shard.ndim() >= 1 && global_shape.size() == shard.shape().size() && offset.size() == global_shape.size(),
               "write_shard {}: shard {} global {} offset {}", name, shape_string(shard.shape()),
               shape_string(global_shape), shape_string(offset));
  const auto dims = to_hsize(shard.shape());
  H5Handle space(H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)), H5Sclose);
  H5Handle link_props(H5_CHECK(H5Pcreate(H5P_LINK_CREATE)), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(link_props.get(), 1));
  hid_t file_type = H5T_IEEE_F32LE;
  if (shard.dtype() == DType::F64) file_type = H5T_IEEE_F64LE;
  if (shard.dtype() == DType::I32) file_type = H5T_STD_I32LE;
  if (shard.dtype() == DType::BF16) file_type = H5T_STD_U16LE;
  H5Handle dataset(H5_CHECK(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), link_props.get(),
                                       H5P_DEFAULT, H5P_DEFAULT)),
                   H5Dclose);
  if (shard.numel() > 0) {
    H5_CHECK(H5Dwrite(dataset.get(), memory_type(shard.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, shard.raw_data()));
  }
  write_int_array_attr(dataset.get(), "global_shape", global_shape);
  write_int_array_attr(dataset.get(), "global_offset", offset);
  if (shard.dtype() == DType::BF16) {
    H5Handle type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
    H5_CHECK(H5Tset_size(type.get(), 4));
    H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
    H5Handle attr(H5_CHECK(H5Acreate2(dataset.get(), "dtype", type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
    H5_CHECK(H5Awrite(attr.get(), type.get(), "bf16"));
  }
}

void Hdf5File::write_tensor(const std::string& name, const Tensor& tensor) {
  write_shard(name, tensor, tensor.shape(), Shape(tensor.shape().size(), 0));
}

bool Hdf5File::has(const std::string& name) const {
  // Walk the path one link at a time: H5Lexists fails on a missing parent.
  size_t position = 0;
  while (true) {
    const size_t slash = name.find('/', position);
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    position = slash + 1;
  }
  const hid_t object = H5Oopen(file_.get(), name.c_str(), H5P_DEFAULT);
  if (object < 0) return false;
  const bool is_dataset = H5Iget_type(object) == H5I_DATASET;
  H5Oclose(object);
  return is_dataset;
}

std::vector<std::string> Hdf5File::dataset_names() const {
  std::vector<std::string> names;
  auto visit = [](hid_t group, const char* name, const H5L_info_t*, void* data) -> herr_t {
    const hid_t object = H5Oopen(group, name, H5P_DEFAULT);
    if (object >= 0) {
      if (H5Iget_type(object) == H5I_DATASET) static_cast<std::vector<std::string>*>(data)->push_back(name);
      H5Oclose(object);
    }
    return 0;
  };
  if (H5Lvisit(file_.get(), H5_INDEX_NAME, H5_ITER_INC, visit, &names) < 0) {
    user_error("checkpoint file {}: cannot list its datasets ({})", path_, hdf5_error_string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Hdf5File::ShardInfo Hdf5File::info(const std::string& name) const {
  if (!has(name)) user_error("checkpoint file {}: dataset {} is missing", path_, name);
  const hid_t id = H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT);
  if (id < 0) user_error("checkpoint file {}: cannot open dataset {} ({})", path_, name, hdf5_error_string());
  H5Handle dataset(id, H5Dclose);
  ShardInfo info;
  H5Handle space(H5_CHECK(H5Dget_space(dataset.get())), H5Sclose);
  const int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  info.shard_shape.assign(dims.begin(), dims.end());
  if (H5Aexists(dataset.get(), "global_shape") <= 0 || H5Aexists(dataset.get(), "global_offset") <= 0) {
    user_error("checkpoint file {}: dataset {} lacks its global_shape/global_offset", path_, name);
  }
  info.global_shape = read_int_array_attr(dataset.get(), "global_shape");
  info.offset = read_int_array_attr(dataset.get(), "global_offset");
  if (info.global_shape.size() != dims.size() || info.offset.size() != dims.size()) {
    user_error("checkpoint file {}: dataset {} has inconsistent shard annotations", path_, name);
  }
  H5Handle type(H5_CHECK(H5Dget_type(dataset.get())), H5Tclose);
  const H5T_class_t type_class = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (type_class == H5T_FLOAT && size == 4) info.dtype = DType::F32;
  else if (type_class == H5T_FLOAT && size == 8) info.dtype = DType::F64;
  else if (type_class == H5T_INTEGER && size == 4) info.dtype = DType::I32;
  else if (type_class == H5T_INTEGER && size == 2 && H5Aexists(dataset.get(), "dtype") > 0 &&
           read_string_attr(dataset.get(), "dtype") == "bf16") info.dtype = DType::BF16;
  else user_error("checkpoint file {}: dataset {} has an unsupported element type", path_, name);
  return info;
}

Tensor Hdf5File::read(const std::string& name) const {
  const ShardInfo shard = info(name);
  Tensor out = Tensor::empty(shard.shard_shape, shard.dtype);
  read_overlap(name, shard.offset, shard.shard_shape, out);
  return out;
}

int64_t Hdf5File::read_overlap(const std::string& name, const Shape& begin, const Shape& count, Tensor& out) const {
  const ShardInfo shard = info(name);
  const size_t rank = shard.shard_shape.size();
  LINPAR_CHECK(begin.size() == rank && count.size() == rank, "read_overlap {}: box rank", name);
  if (out.dtype() != shard.dtype || out.shape() != count) {
    user_error("checkpoint file {}: dataset {} is {} {}, asked for {} {}", path_, name, dtype_name(shard.dtype),
               shape_string(shard.shard_shape), dtype_name(out.dtype()), shape_string(count));
  }
  std::vector<hsize_t> file_start(rank), memory_start(rank), extent(rank);
  int64_t elements = 1;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t lo = std::max(begin[i], shard.offset[i]);
    const int64_t hi = std::min(begin[i] + count[i], shard.offset[i] + shard.shard_shape[i]);
    if (hi <= lo) return 0;
    file_start[i] = static_cast<hsize_t>(lo - shard.offset[i]);
    memory_start[i] = static_cast<hsize_t>(lo - begin[i]);
    extent[i] = static_cast<hsize_t>(hi - lo);
    elements *= hi - lo;
  }
  H5Handle dataset(H5_CHECK(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT)), H5Dclose);
  H5Handle file_space(H5_CHECK(H5Dget_space(dataset.get())), H5Sclose);
  H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, file_start.data(), nullptr, extent.data(), nullptr));
  const auto memory_dims = to_hsize(count);
  H5Handle memory_space(H5_CHECK(H5Screate_simple(static_cast<int>(rank), memory_dims.data(), nullptr)), H5Sclose);
  H5_CHECK(H5Sselect_hyperslab(memory_space.get(), H5S_SELECT_SET, memory_start.data(), nullptr, extent.data(), nullptr));
  if (H5Dread(dataset.get(), memory_type(out.dtype()), memory_space.get(), file_space.get(), H5P_DEFAULT,
              out.raw_data()) < 0) {
    user_error("checkpoint file {}: cannot read dataset {} ({})", path_, name, hdf5_error_string());
  }
  return elements;
}

void Hdf5File::set_attr(const std::string& key, const std::string& value) {
  H5Handle type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), std::max<size_t>(1, value.size())));
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr(H5_CHECK(H5Acreate2(file_.get(), key.c_str(), type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  H5_CHECK(H5Awrite(attr.get(), type.get(), padded.data()));
}

void Hdf5File::set_attr(const std::string& key, int64_t value) {
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr(H5_CHECK(H5Acreate2(file_.get(), key.c_str(), H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value));
}

void Hdf5File::set_attr(const std::string& key, double value) {
  H5Handle scalar(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Handle attr(H5_CHECK(H5Acreate2(file_.get(), key.c_str(), H5T_IEEE_F64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value));
}

void Hdf5File::set_attr(const std::string& key, const std::vector<int64_t>& values) {
  write_int_array_attr(file_.get(), key.c_str(), values);
}

void Hdf5File::set_attr(const std::string& key, const std::vector<double>& values) {
  const hsize_t n = values.size();
  H5Handle space(H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  H5Handle attr(H5_CHECK(H5Acreate2(file_.get(), key.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  if (n > 0) H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()));
}

bool Hdf5File::has_attr(const std::string& key) const { return H5Aexists(file_.get(), key.c_str()) > 0; }

std::string Hdf5File::attr_string(const std::string& key) const {
  if (!has_attr(key)) user_error("checkpoint file {}: attribute {} is missing", path_, key);
  return read_string_attr(file_.get(), key.c_str());
}

int64_t Hdf5File::attr_int(const std::string& key) const {
  const auto values = attr_ints(key);
  if (values.size() != 1) user_error("checkpoint file {}: attribute {} is not a scalar", path_, key);
  return values[0];
}

double Hdf5File::attr_double(const std::string& key) const {
  const auto values = attr_doubles(key);
  if (values.size() != 1) user_error("checkpoint file {}: attribute {} is not a scalar", path_, key);
  return values[0];
}

std::vector<int64_t> Hdf5File::attr_ints(const std::string& key) const {
  if (!has_attr(key)) user_error("checkpoint file {}: attribute {} is missing", path_, key);
  return read_int_array_attr(file_.get(), key.c_str());
}

std::vector<double> Hdf5File::attr_doubles(const std::string& key) const {
  if (!has_attr(key)) user_error("checkpoint file {}: attribute {} is missing", path_, key);
  H5Handle attr(H5_CHECK(H5Aopen(file_.get(), key.c_str(), H5P_DEFAULT)), H5Aclose);
  H5Handle space(H5_CHECK(H5Aget_space(attr.get())), H5Sclose);
  const hssize_t n = H5_CHECK(H5Sget_simple_extent_npoints(space.get()));
  std::vector<double> values(static_cast<size_t>(n));
  if (n > 0) H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()));
  return values;
}

void Hdf5File::flush() { H5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL)); }

Tensor read_global_box(const std::vector<const Hdf5File*>& files, const std::string& name, const Shape& begin,
                       const Shape& count, DType dtype) {
  Tensor out;
  int64_t covered = 0;
  // Replicated shards (e.g. data-parallel copies) share a box; read each box once.
  std::map<std::pair<Shape, Shape>, bool> seen;
  std::string where;
  for (const Hdf5File* file : files) {
    if (!file->has(name)) continue;
    const auto shard = file->info(name);
    if (!seen.emplace(std::make_pair(shard.offset, shard.shard_shape), true).second) continue;
    if (!out.defined()) {
      out = Tensor::zeros(count, shard.dtype);
      where = file->path();
    }
    covered += file->read_overlap(name, begin, count, out);
  }
  if (!out.defined()) user_error("checkpoint: no shard file holds dataset {}", name);
  if (covered != out.numel()) {
    user_error("checkpoint ({}...): the shards of {} cover {} of the {} elements of box {} at {}", where, name, covered,
               out.numel(), shape_string(count), shape_string(begin));
  }
  return out.dtype() == dtype ? out : out.to(dtype);
}

}  // namespace linpar
