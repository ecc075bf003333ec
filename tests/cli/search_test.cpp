// linpar search through the CLI: the table with the counts and the
// explanation, JSON with the stable keys and the layouts in order, bad input
// and a model too large for the cluster refused with one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "run_linpar.h"

namespace linpar {

using testing::run_linpar;

TEST(CliSearch, TableShowsTheBestLayoutsTheCountsAndWhy) {
  const auto r = run_linpar(
      "search --model tnl-385m --gpus-per-node 4 --seq-len 2048 --global-batch 8 --top 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tokens/GPU/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layouts evaluated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" wins at "), std::string::npos) << r.out;
  // Title, header, 3 layouts, counts, explanation; then each layout's
  // `linpar train` command, mpirun and Slurm.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 7 + 3 * 3) << r.out;
  EXPECT_NE(
      r.out.find("layout 3:\n  run it: mpirun -np 4 --map-by ppr:4:node build/cli/linpar train "),
      std::string::npos)
      << r.out;
}

TEST(CliSearch, JsonHasTheStableKeysInRankOrder) {
  const auto r = run_linpar(
      "search --model tnl-385m --gpus-per-node 4 --seq-len 2048 --global-batch 8 "
      "--co2-tau 0,4 --sp-kinds lasp,ulysses --max-micro-batch 4 --gpipe --pp-chunks 1,2 --top 5 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* key :
       {"evaluated", "fitting", "explanation", "layouts", "gpus", "seq_len", "global_batch"}) {
    ASSERT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["gpus"], 4);
  EXPECT_GT(j["evaluated"].get<int64_t>(), 0);
  EXPECT_LE(j["fitting"].get<int64_t>(), j["evaluated"].get<int64_t>());
  ASSERT_EQ(j["layouts"].size(), 5u);
  double previous = 1e300;
  for (const auto& l : j["layouts"]) {
    for (const char* key : {"rank", "dp", "tp", "tp_sp", "pp", "pp_schedule", "pp_chunks", "sp", "sp_kind",
                            "micro_batch", "recompute", "zero", "co2_tau", "step_time_s",
                            "tokens_per_gpu_per_s", "mfu", "memory_per_gpu_bytes", "fits"}) {
      ASSERT_TRUE(l.contains(key)) << key;
    }
    EXPECT_TRUE(l["fits"].get<bool>());
    EXPECT_EQ(l["dp"].get<int>() * l["tp"].get<int>() * l["pp"].get<int>() * l["sp"].get<int>(), 4);
    const double tps = l["tokens_per_gpu_per_s"].get<double>();
    EXPECT_LE(tps, previous);
    previous = tps;
    // tokens/GPU/s · GPUs · step time = the global batch's tokens.
    EXPECT_NEAR(tps * 4 * l["step_time_s"].get<double>(), 8.0 * 2048, 1e-6);
  }
  EXPECT_NE(j["explanation"].get<std::string>().find(" wins at "), std::string::npos);
}

TEST(CliSearch, BadInputIsOneLineAndExitTwo) {
  for (const std::string args :
       {"--model nope", "--model tnl-385m --format xml", "--model tnl-385m --top 0",
        "--model tnl-385m --co2-tau 0,x", "--model tnl-385m --co2-tau 0,-4",
        "--model tnl-385m --co2-tau 0,,4", "--model tnl-385m --co2-tau 0,4,0",
        "--model tnl-385m --sp-kinds lasp,lasp", "--model tnl-385m --sp-kinds ring",
        "--model tnl-385m --max-micro-batch 0", "--model tnl-385m --seq-len 0",
        "--model tnl-385m --global-batch 0", "--model tnl-385m --gpu v100",
        "--model llama2-7b --sp-kinds lasp", "--model tnl-385m --hw gpu.bf16_tflops=fast",
        "--model tnl-385m --gpus-per-node 0", "--model tnl-385m --pp-chunks 1,x",
        "--model tnl-385m --pp-chunks 0", "--model tnl-385m --pp-chunks 2,2",
        // No valid layout: tnl-tiny's 4 heads refuse tp 3, its 2 layers pp 3, and dp 3 does not
        // divide 2.
        "--model tnl-tiny --gpus-per-node 3 --global-batch 2"}) {
    const auto r = run_linpar("search " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
  }
}

TEST(CliSearch, NothingFitsNamesTheSmallestNeed) {
  // 175B parameters at 18 bytes each over 8 GPUs: no split fits 80 GiB.
  const auto r =
      run_linpar("search --model tnl-175b --gpus-per-node 8 --seq-len 2048 --global-batch 8");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("no layout fits: the smallest ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GiB per GPU, h100 has 80"), std::string::npos) << r.err;
}

}  // namespace linpar

namespace linpar {

namespace {

std::vector<double> step_losses(const std::string& metrics_path) {
  std::vector<double> losses;
  std::istringstream in(testing::read_file(metrics_path));
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

}  // namespace

// Plan → run: `linpar search` prints, for each layout, the `linpar train`
// command that runs it; the top 3 for a small model on 8 GPUs, run as
// printed on 8 CPU ranks (the device and dtype swapped for the CPU's f64),
// train what one process trains: every step's loss within 1e-9.
TEST(CliPlanToRun, SearchsTopThreeRunAsPrinted) {
  const auto r = run_linpar(
      "search --model tnl-tiny --gpus-per-node 8 --seq-len 64 --global-batch 16 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const std::string data = " --data " + testing::default_corpus_dir() +
                           " --steps 2 --eval-every 0 --eval-windows 1 --progress quiet";
  testing::TempDir scratch;
  const std::string one = scratch / "one.jsonl";
  for (int i = 0; i < 3; ++i) {
    const nlohmann::json& layout = j["layouts"][static_cast<size_t>(i)];
    const std::string command = layout["train_command"].get<std::string>();
    const std::string head = "mpirun -np 8 --map-by ppr:8:node build/cli/linpar train ";
    ASSERT_EQ(command.rfind(head, 0), 0u) << command;
    std::string flags = command.substr(head.size());
    const std::string gpu = "--device cuda --dtype bf16";
    ASSERT_NE(flags.find(gpu), std::string::npos) << flags;
    flags.replace(flags.find(gpu), gpu.size(), "--device cpu --dtype f64");
    EXPECT_EQ(layout["slurm_command"].get<std::string>(),
              "sbatch --nodes 1 --ntasks-per-node 8 scripts/launch/slurm.sbatch " +
                  command.substr(head.size()));
    const std::string metrics = scratch / ("layout" + std::to_string(i) + ".jsonl");
    const std::string run = testing::mpirun() + " -np 8 " + LINPAR_BINARY + " train " + flags +
                            data + " --metrics " + metrics + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(run.c_str()), 0) << run;
    // One process, the same model and batch.
    const std::string single = std::string(LINPAR_BINARY) +
                               " train --model tnl-tiny --device cpu --dtype f64" +
                               " --seq-len 64 --global-batch 16 --micro-batch " +
                               std::to_string(layout["micro_batch"].get<int>()) + data +
                               " --metrics " + one + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(single.c_str()), 0) << single;
    const std::vector<double> got = step_losses(metrics), want = step_losses(one);
    ASSERT_EQ(got.size(), 2u) << flags;
    ASSERT_EQ(want.size(), 2u);
    for (size_t s = 0; s < got.size(); ++s) {
      EXPECT_NEAR(got[s], want[s], 1e-9 * want[s]) << flags << " step " << s + 1;
    }
  }
}

}  // namespace linpar
