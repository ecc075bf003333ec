// linpar profile on the CPU: the file holds every GEMM of the model's layers
// (forward and both backward products) at the right shapes with positive
// rates, the attention kernels at d and 2d keys (LRPE), each at micro-batches
// 1, 2, ... up to twice the given one, the copy bandwidth;
// bad values are refused with one line and no file. (Collectives are
// measured under mpirun; the GPU run is scripts/gpu_check.sh's.)
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "run_linpar.h"

namespace linpar {

using testing::read_file;
using testing::run_linpar;
using testing::TempDir;

TEST(CliProfile, WritesTheModelsShapesAndRates) {
  TempDir dir;
  const std::string path = dir / "profile.json";
  const auto r = run_linpar("profile --device cpu --model tnl-tiny --seq-len 48 --micro-batch 2 --reps 2 --out " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json p = nlohmann::json::parse(read_file(path));
  EXPECT_EQ(p["format"], "linpar-profile-1");
  EXPECT_EQ(p["device"], "cpu");
  // Micro-batches 1, 2 and 4 (up to twice the given 2): 5 weight shapes × 3
  // products each. tnl-tiny: D 64, F 128, V 256; rows = micro-batch × 48.
  ASSERT_EQ(p["gemm"].size(), 45u);
  for (int size = 0; size < 3; ++size) {
    const int64_t rows = (int64_t{1} << size) * 48;
    const nlohmann::json& qkvu = p["gemm"][15 * size];
    EXPECT_EQ(qkvu["layer"], "qkvu_proj");
    EXPECT_EQ(qkvu["pass"], "forward");
    EXPECT_EQ(qkvu["m"], rows);
    EXPECT_EQ(qkvu["n"], 256);
    EXPECT_EQ(qkvu["k"], 64);
    const nlohmann::json& dw = p["gemm"][15 * size + 14];
    EXPECT_EQ(dw["layer"], "lm_head");
    EXPECT_EQ(dw["pass"], "backward_weight");
    EXPECT_EQ(dw["m"], 256);
    EXPECT_EQ(dw["k"], rows);
  }
  for (const auto& g : p["gemm"]) EXPECT_GT(g["tflops"].get<double>(), 0) << g.dump();
  ASSERT_EQ(p["lightning_attention"].size(), 6u);  // dk = d and 2d (LRPE) at each micro-batch
  for (int size = 0; size < 3; ++size) {
    const nlohmann::json& a = p["lightning_attention"][2 * size];
    const nlohmann::json& b = p["lightning_attention"][2 * size + 1];
    EXPECT_EQ(a["batch"], 1 << size);
    EXPECT_EQ(b["dk"], 2 * a["dk"].get<int>());
  }
  EXPECT_GT(p["memory"]["gbps"].get<double>(), 0);
  EXPECT_TRUE(p["collectives"].empty());  // one rank
}

TEST(CliProfile, BadValuesAreRefusedWithoutAFile) {
  TempDir dir;
  const std::string path = dir / "profile.json";
  for (const std::string args : {"--device tpu", "--device cpu --dtype bf16", "--device cpu --tp 3",
                                 "--device cpu --sizes-mb 1,x", "--device cpu --reps 0"}) {
    const auto r = run_linpar("profile " + args + " --out " + path);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(path)) << args;
  }
}

}  // namespace linpar
