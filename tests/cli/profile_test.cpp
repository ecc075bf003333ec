// linpar profile on the CPU: the file holds every GEMM of the model's layers
// (forward and both backward products) at the right shapes with positive
// rates, the attention kernels at d and 2d keys (LRPE), the copy bandwidth;
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
  ASSERT_EQ(p["gemm"].size(), 15u);  // 5 weight shapes × 3 products
  // tnl-tiny: D 64, F 128, V 256; rows = 2 × 48.
  const nlohmann::json& qkvu = p["gemm"][0];
  EXPECT_EQ(qkvu["layer"], "qkvu_proj");
  EXPECT_EQ(qkvu["m"], 96);
  EXPECT_EQ(qkvu["n"], 256);
  EXPECT_EQ(qkvu["k"], 64);
  const nlohmann::json& dw = p["gemm"][14];
  EXPECT_EQ(dw["layer"], "lm_head");
  EXPECT_EQ(dw["pass"], "backward_weight");
  EXPECT_EQ(dw["m"], 256);
  EXPECT_EQ(dw["k"], 96);
  for (const auto& g : p["gemm"]) EXPECT_GT(g["tflops"].get<double>(), 0) << g.dump();
  ASSERT_EQ(p["lightning_attention"].size(), 2u);  // dk = d and 2d (LRPE)
  EXPECT_EQ(p["lightning_attention"][1]["dk"], 2 * p["lightning_attention"][0]["dk"].get<int>());
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
