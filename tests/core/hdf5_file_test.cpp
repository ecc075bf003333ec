// HDF5 shard files: round trips, attributes, sharded global tensors assembled
// from several files (the resharding path of checkpoints), and refusal of
// missing, truncated and foreign files without HDF5 printing to stderr.
#include "core/hdf5_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace linpar {

using testing::TempDir;

namespace {

// Element i (row-major) holds the value i.
Tensor iota(const Shape& shape, DType dtype = DType::F32) {
  Tensor t = Tensor::empty(shape, DType::F64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = static_cast<double>(i);
  return t.to(dtype);
}

// The block [offset, offset + shape) of a row-major 2-d or 3-d f32 tensor
// (leading dims of size 1 pad lower ranks).
Tensor block(const Tensor& global, const Shape& offset, const Shape& shape) {
  Shape g = global.shape(), o = offset, s = shape;
  while (g.size() < 3) {
    g.insert(g.begin(), 1);
    o.insert(o.begin(), 0);
    s.insert(s.begin(), 1);
  }
  Tensor out = Tensor::empty(shape, DType::F32);
  float* dst = out.data<float>();
  const float* src = global.data<float>();
  for (int64_t i = 0; i < s[0]; ++i) {
    for (int64_t j = 0; j < s[1]; ++j) {
      for (int64_t k = 0; k < s[2]; ++k) *dst++ = src[((o[0] + i) * g[1] + o[1] + j) * g[2] + o[2] + k];
    }
  }
  return out;
}

// Writes each (offset, shape) block of `global` as dataset `name` into its own
// file rank<r>.h5 and opens them all for reading.
std::vector<Hdf5File> write_ranks(const TempDir& dir, const std::string& name, const Tensor& global,
                                  const std::vector<std::pair<Shape, Shape>>& boxes) {
  std::vector<Hdf5File> files;
  for (size_t r = 0; r < boxes.size(); ++r) {
    const std::string path = dir / ("rank" + std::to_string(r) + ".h5");
    {
      Hdf5File f = Hdf5File::create(path);
      f.write_shard(name, block(global, boxes[r].first, boxes[r].second), global.shape(), boxes[r].first);
    }
    files.push_back(Hdf5File::open_read(path));
  }
  return files;
}

std::vector<const Hdf5File*> views(const std::vector<Hdf5File>& files) {
  std::vector<const Hdf5File*> out;
  for (const auto& f : files) out.push_back(&f);
  return out;
}

}  // namespace

TEST(Hdf5File, RoundTripOfEveryDtypeAndNestedNames) {
  TempDir dir;
  const Tensor f32 = iota({3, 4});
  const Tensor f64 = Tensor::from_vector<double>({2}, {1.0 / 3, -2e300});
  const Tensor i32 = Tensor::from_vector<int32_t>({3}, {-1, 0, 1 << 30});
  const Tensor b16 = Tensor::from_vector<float>({2}, {1.5f, -3.25f}).to(DType::BF16);
  const Tensor scalar = Tensor::from_vector<float>({}, {7.5f});
  {
    Hdf5File file = Hdf5File::create(dir / "a.h5");
    file.write_tensor("layers/0/token_mixer/qkvu_proj", f32);
    file.write_tensor("layers/0/token_mixer/norm", f64);
    file.write_tensor("i32", i32);
    file.write_tensor("bf16", b16);
    file.write_tensor("scalar", scalar);
    file.flush();
  }
  const Hdf5File file = Hdf5File::open_read(dir / "a.h5");
  const Tensor q = file.read("layers/0/token_mixer/qkvu_proj");
  EXPECT_EQ(q.dtype(), DType::F32);
  EXPECT_EQ(q.shape(), (Shape{3, 4}));
  EXPECT_EQ(q.to_vector<float>(), f32.to_vector<float>());
  EXPECT_EQ(file.read("layers/0/token_mixer/norm").to_vector<double>(), f64.to_vector<double>());
  EXPECT_EQ(file.read("i32").to_vector<int32_t>(), i32.to_vector<int32_t>());
  const Tensor b = file.read("bf16");
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.to(DType::F32).to_vector<float>(), (std::vector<float>{1.5f, -3.25f}));
  const Tensor s = file.read("scalar");
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>{7.5f});

  const auto info = file.info("i32");
  EXPECT_EQ(info.dtype, DType::I32);
  EXPECT_EQ(info.shard_shape, Shape{3});
  EXPECT_EQ(info.global_shape, Shape{3});
  EXPECT_EQ(info.offset, Shape{0});
  EXPECT_EQ(file.info("bf16").dtype, DType::BF16);
  EXPECT_EQ(file.info("layers/0/token_mixer/norm").dtype, DType::F64);

  EXPECT_EQ(file.dataset_names(), (std::vector<std::string>{"bf16", "i32", "layers/0/token_mixer/norm",
                                                            "layers/0/token_mixer/qkvu_proj", "scalar"}));
  EXPECT_TRUE(file.has("i32"));
  EXPECT_TRUE(file.has("layers/0/token_mixer/qkvu_proj"));
  EXPECT_FALSE(file.has("layers/0"));       // a group, not a dataset
  EXPECT_FALSE(file.has("nothing/here"));   // missing parent
  EXPECT_FALSE(file.has("i32/below"));      // parent is a dataset
  EXPECT_THROW(file.info("nothing"), UserError);
  EXPECT_THROW(file.read("layers/1/token_mixer/qkvu_proj"), UserError);
}

TEST(Hdf5File, AttributesOfEveryKind) {
  TempDir dir;
  {
    Hdf5File file = Hdf5File::create(dir / "a.h5");
    file.set_attr("name", std::string("tnl-tiny"));
    file.set_attr("empty", std::string());
    file.set_attr("step", int64_t{41});
    file.set_attr("step", int64_t{42});  // replaces
    file.set_attr("lr", 2.5e-4);
    file.set_attr("shape", std::vector<int64_t>{1, -2, int64_t{1} << 40});
    file.set_attr("no_ints", std::vector<int64_t>{});
    file.set_attr("losses", std::vector<double>{0.5, 0.25, -1e-300});
  }
  const Hdf5File file = Hdf5File::open_read(dir / "a.h5");
  EXPECT_EQ(file.attr_string("name"), "tnl-tiny");
  EXPECT_EQ(file.attr_string("empty"), "");
  EXPECT_EQ(file.attr_int("step"), 42);
  EXPECT_EQ(file.attr_double("lr"), 2.5e-4);
  EXPECT_EQ(file.attr_double("step"), 42.0);  // integers read as numbers
  EXPECT_EQ(file.attr_ints("shape"), (std::vector<int64_t>{1, -2, int64_t{1} << 40}));
  EXPECT_EQ(file.attr_ints("no_ints"), std::vector<int64_t>{});
  EXPECT_EQ(file.attr_doubles("losses"), (std::vector<double>{0.5, 0.25, -1e-300}));
  EXPECT_TRUE(file.has_attr("lr"));
  EXPECT_FALSE(file.has_attr("missing"));
  EXPECT_THROW(file.attr_int("missing"), UserError);
  EXPECT_THROW(file.attr_int("name"), UserError);       // a string
  EXPECT_THROW(file.attr_int("lr"), UserError);         // a float
  EXPECT_THROW(file.attr_int("shape"), UserError);      // not a single value
  EXPECT_THROW(file.attr_string("step"), UserError);    // not a string
  EXPECT_THROW(file.attr_doubles("name"), UserError);
}

TEST(Hdf5File, GlobalTensorAssembledFromUnevenShardsInFourFiles) {
  TempDir dir;
  const Tensor global = iota({6, 10});
  // Rows 4 + 2, columns 3 + 7: four shards, one per "rank" file.
  const std::vector<std::pair<Shape, Shape>> boxes = {
      {{0, 0}, {4, 3}}, {{0, 3}, {4, 7}}, {{4, 0}, {2, 3}}, {{4, 3}, {2, 7}}};
  const std::vector<Hdf5File> files = write_ranks(dir, "layers/0/w", global, boxes);
  auto shards = views(files);
  const auto info = files[3].info("layers/0/w");
  EXPECT_EQ(info.shard_shape, (Shape{2, 7}));
  EXPECT_EQ(info.global_shape, (Shape{6, 10}));
  EXPECT_EQ(info.offset, (Shape{4, 3}));
  EXPECT_EQ(files[1].read("layers/0/w").to_vector<float>(), block(global, {0, 3}, {4, 7}).to_vector<float>());

  const Tensor whole = read_global_box(shards, "layers/0/w", {0, 0}, {6, 10}, DType::F32);
  EXPECT_EQ(whole.shape(), (Shape{6, 10}));
  EXPECT_EQ(whole.to_vector<float>(), global.to_vector<float>());
  // An inner box crossing both shard borders (row 4, column 3), converted to f64.
  const Tensor inner = read_global_box(shards, "layers/0/w", {2, 1}, {3, 5}, DType::F64);
  ASSERT_EQ(inner.shape(), (Shape{3, 5}));
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(inner.data<double>()[i * 5 + j], (2 + i) * 10 + 1 + j) << i << "," << j;
  }
  // One file's overlap with the inner box: global row 4 x columns 3..5 from rank 3, placed at row 2, cols 2..4.
  Tensor part = Tensor::zeros({3, 5}, DType::F32);
  EXPECT_EQ(files[3].read_overlap("layers/0/w", {2, 1}, {3, 5}, part), 1 * 3);
  EXPECT_EQ(part.data<float>()[2 * 5 + 2], 43.0f);
  EXPECT_EQ(part.data<float>()[2 * 5 + 4], 45.0f);
  EXPECT_EQ(part.data<float>()[1 * 5 + 2], 0.0f);  // rows outside the shard stay untouched
  Tensor elsewhere = Tensor::zeros({2, 7}, DType::F32);
  EXPECT_EQ(files[0].read_overlap("layers/0/w", {4, 3}, {2, 7}, elsewhere), 0);  // rank 0 holds none of it
  // Mismatched requests name the dataset.
  Tensor wrong_dtype = Tensor::zeros({3, 5}, DType::F64);
  try {
    files[0].read_overlap("layers/0/w", {2, 1}, {3, 5}, wrong_dtype);
    ADD_FAILURE() << "no error for a dtype mismatch";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("layers/0/w"), std::string::npos) << e.what();
  }
  Tensor wrong_rank = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(files[0].read_overlap("layers/0/w", {2}, {3}, wrong_rank), UserError);
  EXPECT_THROW(read_global_box(shards, "layers/0/w", {4, 4}, {3, 5}, DType::F32), UserError);  // outside
  EXPECT_THROW(read_global_box(shards, "layers/0/v", {0, 0}, {1, 1}, DType::F32), UserError);  // no such tensor

  // Without the last shard the full box is not covered, but the top rows are.
  shards.pop_back();
  try {
    read_global_box(shards, "layers/0/w", {0, 0}, {6, 10}, DType::F32);
    ADD_FAILURE() << "no error for an uncovered box";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("46 of the 60"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_global_box(shards, "layers/0/w", {0, 0}, {4, 10}, DType::F32).to_vector<float>(),
            block(global, {0, 0}, {4, 10}).to_vector<float>());
}

TEST(Hdf5File, ThreeDimensionalShardsWithReplicasAndOverlapDetection) {
  TempDir dir;
  const Tensor global = iota({4, 5, 6});
  // Split dims 0 (1 + 3) and 2 (4 + 2); the last two files replicate the first two (data-parallel copies).
  const std::vector<std::pair<Shape, Shape>> boxes = {
      {{0, 0, 0}, {1, 5, 4}}, {{0, 0, 4}, {1, 5, 2}}, {{1, 0, 0}, {3, 5, 4}}, {{1, 0, 4}, {3, 5, 2}},
      {{0, 0, 0}, {1, 5, 4}}, {{0, 0, 4}, {1, 5, 2}}};
  const std::vector<Hdf5File> files = write_ranks(dir, "w", global, boxes);
  const Tensor box = read_global_box(views(files), "w", {0, 1, 3}, {3, 3, 2}, DType::F32);
  EXPECT_EQ(box.to_vector<float>(), block(global, {0, 1, 3}, {3, 3, 2}).to_vector<float>());
  EXPECT_EQ(read_global_box(views(files), "w", {0, 0, 0}, {4, 5, 6}, DType::F32).to_vector<float>(),
            global.to_vector<float>());

  // A shard that partly overlaps another is a corrupt layout, even if the element counts add up.
  TempDir bad;
  const std::vector<Hdf5File> overlapping =
      write_ranks(bad, "w", global, {{{0, 0, 0}, {3, 5, 6}}, {{2, 0, 0}, {2, 5, 6}}});
  EXPECT_THROW(read_global_box(views(overlapping), "w", {1, 0, 0}, {3, 5, 6}, DType::F32), UserError);
}

TEST(Hdf5File, MissingTruncatedAndForeignFilesAreUserErrors) {
  TempDir dir;
  {
    Hdf5File f = Hdf5File::create(dir / "good.h5");
    f.write_tensor("w", iota({64, 64}));
  }
  auto expect_refused = [](const std::string& path) {
    ::testing::internal::CaptureStderr();
    try {
      Hdf5File::open_read(path).read("w");
      ADD_FAILURE() << "no error for " << path;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "HDF5 printed to stderr for " << path;
  };
  EXPECT_EQ(Hdf5File::open_read(dir / "good.h5").read("w").to_vector<float>(), iota({64, 64}).to_vector<float>());
  expect_refused(dir / "missing.h5");
  std::filesystem::copy_file(dir / "good.h5", dir / "truncated.h5");
  std::filesystem::resize_file(dir / "truncated.h5", std::filesystem::file_size(dir / "good.h5") / 2);
  expect_refused(dir / "truncated.h5");
  std::ofstream(dir / "text.h5") << "this is not HDF5\n";
  expect_refused(dir / "text.h5");
  expect_refused(dir.path().string());  // a directory
}

}  // namespace linpar
