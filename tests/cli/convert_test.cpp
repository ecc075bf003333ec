// linpar convert: released-layout safetensors <-> linpar checkpoints.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/hdf5_file.h"
#include "core/safetensors.h"
#include "run_linpar.h"

namespace linpar {

using testing::run_linpar;
using testing::TempDir;

namespace {

// The released names for a 2-layer model with LRPE in the first layer,
// written out by hand (independently of model/released_names.cpp).
const std::vector<std::pair<std::string, Shape>> kTinyReleased = {
    {"model.embed_tokens.weight", {256, 64}},
    {"model.layers.0.token_mixer.qkvu_proj.weight", {256, 64}},
    {"model.layers.0.token_mixer.out_proj.weight", {64, 64}},
    {"model.layers.0.token_mixer.lrpe.theta", {4, 1, 16}},  // the released Lrpe's [H, 1, d]
    {"model.layers.0.channel_mixer.l1.weight", {128, 64}},
    {"model.layers.0.channel_mixer.l2.weight", {128, 64}},
    {"model.layers.0.channel_mixer.l3.weight", {64, 128}},
    {"model.layers.1.token_mixer.qkvu_proj.weight", {256, 64}},
    {"model.layers.1.token_mixer.out_proj.weight", {64, 64}},
    {"model.layers.1.channel_mixer.l1.weight", {128, 64}},
    {"model.layers.1.channel_mixer.l2.weight", {128, 64}},
    {"model.layers.1.channel_mixer.l3.weight", {64, 128}},
    {"lm_head.weight", {256, 64}},
};

Tensor pattern(const Shape& shape, int salt) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>((i * 37 + salt) % 101) / 50.0f - 1.0f;
  return t;
}

}  // namespace

TEST(Convert, ImportsASyntheticReleasedFileAndTrainsFromIt) {
  TempDir dir;
  SafetensorsWriter writer;
  int salt = 0;
  for (const auto& [name, shape] : kTinyReleased) writer.add(name, pattern(shape, salt++), "BF16");
  writer.add("model.some_buffer", pattern({3}, 99),
             "F32");  // extra tensors are reported and skipped
  writer.write(dir / "model.safetensors");

  auto r = run_linpar("convert --in " + (dir / "model.safetensors") + " --out " + (dir / "ckpt") +
                      " --model tnl-tiny");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ignoring model.some_buffer"), std::string::npos) << r.err;
  Hdf5File file = Hdf5File::open_read(dir / "ckpt/step_00000000/rank_00000.h5");
  Tensor qkvu = file.read("params/layers.1.token_mixer.qkvu_proj");
  EXPECT_EQ(qkvu.to_vector<float>(),
            pattern({256, 64}, 7).to(DType::BF16).to(DType::F32).to_vector<float>());
  Tensor theta = file.read("params/layers.0.token_mixer.lrpe.theta");
  EXPECT_EQ(theta.shape(), (Shape{64}));
  EXPECT_EQ(theta.to_vector<float>(),
            pattern({4, 1, 16}, 3).to(DType::BF16).to(DType::F32).to_vector<float>());

  auto train = run_linpar("train --model tnl-tiny --init-from " + (dir / "ckpt") + " --data " +
                          std::string(LINPAR_SOURCE_DIR) +
                          "/data/kjv --steps 2 --seq-len 16 --micro-batch 2"
                          " --global-batch 2 --progress quiet --eval-windows 2");
  EXPECT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.out.find("initialised weights from"), std::string::npos) << train.out;
}

TEST(Convert, RefusesMissingTensorsAndWrongShapes) {
  TempDir dir;
  SafetensorsWriter missing;
  for (size_t i = 0; i + 1 < kTinyReleased.size(); ++i)
    missing.add(kTinyReleased[i].first, pattern(kTinyReleased[i].second, 0), "F32");
  missing.write(dir / "missing.safetensors");
  auto r = run_linpar("convert --in " + (dir / "missing.safetensors") + " --out " + (dir / "a") +
                      " --model tnl-tiny");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("lm_head.weight is missing"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "a/step_00000000"));

  SafetensorsWriter wrong;
  for (const auto& [name, shape] : kTinyReleased) {
    wrong.add(name,
              pattern(name == "model.layers.0.channel_mixer.l1.weight" ? Shape{100, 64} : shape, 0),
              "F32");
  }
  wrong.write(dir / "wrong.safetensors");
  r = run_linpar("convert --in " + (dir / "wrong.safetensors") + " --out " + (dir / "b") +
                 " --model tnl-tiny");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("l1.weight has shape [100, 64]"), std::string::npos) << r.err;
}

TEST(Convert, CheckpointToSafetensorsAndBackIsExactInF32) {
  TempDir dir;
  auto r = run_linpar(
      "train --model tnl-tiny --data " + std::string(LINPAR_SOURCE_DIR) +
      "/data/kjv --steps 2 --seq-len 16 --micro-batch 2 --global-batch 2 --progress quiet"
      " --eval-windows 2 --ckpt-dir " +
      (dir / "ckpt") + " --ckpt-every 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_linpar("convert --in " + (dir / "ckpt") + " --out " + (dir / "out.safetensors") +
                 " --dtype f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SafetensorsReader exported(dir / "out.safetensors");
  EXPECT_EQ(exported.entries().size(), kTinyReleased.size());
  for (const auto& [name, shape] : kTinyReleased)
    EXPECT_EQ(exported.entry(name).shape, shape) << name;

  r = run_linpar("convert --in " + (dir / "out.safetensors") + " --out " + (dir / "back") +
                 " --model tnl-tiny");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Hdf5File original = Hdf5File::open_read(dir / "ckpt/step_00000002/rank_00000.h5");
  Hdf5File back = Hdf5File::open_read(dir / "back/step_00000000/rank_00000.h5");
  for (const std::string& name : original.dataset_names()) {
    if (name.rfind("params/", 0) != 0) continue;
    EXPECT_EQ(original.read(name).to_vector<float>(), back.read(name).to_vector<float>()) << name;
  }
}

}  // namespace linpar
