// HDF5 shard files: round trips, attributes, sharded global tensors assembled
// from several files (the resharding path of checkpoints), and refusal of
// missing, truncated and foreign files.
#include "core/hdf5_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace linpar {

using testing::TempDir;

namespace {
Tensor iota(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}
}  // namespace

TEST(Hdf5File, RoundTripOfEveryDtypeAndNestedNames) {
  TempDir dir;
  Tensor f32 = iota({3, 4});
  Tensor f64 = Tensor::from_vector<double>({2}, {1.0 / 3, -2e300});
  Tensor i32 = Tensor::from_vector<int32_t>({3}, {-1, 0, 1 << 30});
  Tensor b16 = Tensor::from_vector<float>({2}, {1.5f, -3.25f}).to(DType::BF16);
  {
    Hdf5File file = Hdf5File::create(dir / "a.h5");
    file.write_tensor("layers/0/token_mixer/qkvu_proj", f32);
    file.write_tensor("f64", f64);
    file.write_tensor("i32", i32);
    file.write_tensor("bf16", b16);
    file.set_attr("name", std::string("tnl-tiny"));
    file.set_attr("step", int64_t{42});
    file.set_attr("lr", 2.5e-4);
    file.set_attr("shape", std::vector<int64_t>{1, 2, 3});
    file.set_attr("losses", std::vector<double>{0.5, 0.25});
  }
  Hdf5File file = Hdf5File::open_read(dir / "a.h5");
  EXPECT_EQ(file.read("layers/0/token_mixer/qkvu_proj").to_vector<float>(), f32.to_vector<float>());
  EXPECT_EQ(file.read("f64").to_vector<double>(), f64.to_vector<double>());
  EXPECT_EQ(file.read("i32").to_vector<int32_t>(), i32.to_vector<int32_t>());
  Tensor b = file.read("bf16");
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.to(DType::F32).to_vector<float>(), (std::vector<float>{1.5f, -3.25f}));
  EXPECT_EQ(file.attr_string("name"), "tnl-tiny");
  EXPECT_EQ(file.attr_int("step"), 42);
  EXPECT_EQ(file.attr_double("lr"), 2.5e-4);
  EXPECT_EQ(file.attr_ints("shape"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(file.attr_doubles("losses"), (std::vector<double>{0.5, 0.25}));
  EXPECT_EQ(file.dataset_names(),
            (std::vector<std::string>{"bf16", "f64", "i32", "layers/0/token_mixer/qkvu_proj"}));
  EXPECT_TRUE(file.has("f64"));
  EXPECT_FALSE(file.has("layers/0"));  // a group, not a dataset
  EXPECT_FALSE(file.has("nothing/here"));
  EXPECT_THROW(file.info("nothing"), UserError);
}

TEST(Hdf5File, GlobalTensorAssembledFromUnevenShardsInFourFiles) {
  TempDir dir;
  const Tensor global = iota({6, 10});
  // Rows 4 + 2, columns 3 + 7: four shards, one per "rank" file.
  const std::vector<std::pair<Shape, Shape>> boxes = {
      {{0, 0}, {4, 3}}, {{0, 3}, {4, 7}}, {{4, 0}, {2, 3}}, {{4, 3}, {2, 7}}};
  std::vector<Hdf5File> files;
  for (size_t r = 0; r < boxes.size(); ++r) {
    const auto& [offset, shape] = boxes[r];
    Tensor shard = Tensor::empty(shape, DType::F32);
    for (int64_t i = 0; i < shape[0]; ++i) {
      for (int64_t j = 0; j < shape[1]; ++j) {
        shard.data<float>()[i * shape[1] + j] =
            global.data<float>()[(offset[0] + i) * 10 + offset[1] + j];
      }
    }
    Hdf5File f = Hdf5File::create(dir / ("rank" + std::to_string(r) + ".h5"));
    f.write_shard("w", shard, {6, 10}, offset);
  }
  for (size_t r = 0; r < boxes.size(); ++r)
    files.push_back(Hdf5File::open_read(dir / ("rank" + std::to_string(r) + ".h5")));
  std::vector<const Hdf5File*> views;
  for (const auto& f : files) views.push_back(&f);

  Tensor whole = read_global_box(views, "w", {0, 0}, {6, 10}, DType::F32);
  EXPECT_EQ(whole.to_vector<float>(), global.to_vector<float>());
  // An inner box crossing all four shard borders, converted to f64.
  Tensor inner = read_global_box(views, "w", {2, 1}, {3, 5}, DType::F64);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_EQ(inner.data<double>()[i * 5 + j], (2 + i) * 10 + 1 + j);
  }
  // Without the last shard the box is not covered.
  views.pop_back();
  EXPECT_THROW(read_global_box(views, "w", {0, 0}, {6, 10}, DType::F32), UserError);
  EXPECT_NO_THROW(read_global_box(views, "w", {0, 0}, {4, 10}, DType::F32));
}

TEST(Hdf5File, MissingTruncatedAndForeignFilesAreUserErrors) {
  TempDir dir;
  {
    Hdf5File f = Hdf5File::create(dir / "good.h5");
    f.write_tensor("w", iota({64, 64}));
  }
  auto expect_refused = [](const std::string& path) {
    try {
      Hdf5File::open_read(path).read("w");
      ADD_FAILURE() << "no error for " << path;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_refused(dir / "missing.h5");
  std::filesystem::copy_file(dir / "good.h5", dir / "truncated.h5");
  std::filesystem::resize_file(dir / "truncated.h5",
                               std::filesystem::file_size(dir / "good.h5") / 2);
  expect_refused(dir / "truncated.h5");
  std::ofstream(dir / "text.h5") << "this is not HDF5\n";
  expect_refused(dir / "text.h5");
}

}  // namespace linpar
