// End-to-end training through the CLI on the default corpus: the loss really
// falls, resume is bit-exact, and broken or foreign checkpoints are refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "run_linpar.h"

namespace linpar {

namespace fs = std::filesystem;
using testing::default_corpus_dir;
using testing::read_file;
using testing::run_linpar;
using testing::TempDir;

namespace {

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The per-step lines (the step-0 line holds only the untrained validation score).
std::vector<nlohmann::json> step_lines(const std::vector<nlohmann::json>& lines) {
  std::vector<nlohmann::json> steps;
  for (const auto& line : lines) {
    if (line.contains("loss")) steps.push_back(line);
  }
  return steps;
}

void require_corpus() {
  if (!fs::exists(default_corpus_dir() + "/train.bin")) {
    FAIL() << "the default corpus is missing: run scripts/prepare_corpus.sh (scripts/test.sh does)";
  }
}

// Small and fast settings shared by the resume tests.
const std::string kQuickRun =
    " --model tnl-tiny --data " + std::string(LINPAR_SOURCE_DIR) +
    "/data/kjv --seq-len 32 --micro-batch 2 --global-batch 4 --eval-every 0 --eval-windows 4"
    " --warmup 2 --progress quiet";

}  // namespace

TEST(Train, TinyPresetLowersValidationBitsPerByte) {
  require_corpus();
  TempDir dir;
  auto r = run_linpar(
      "train --model tnl-tiny --steps 250 --seq-len 64 --micro-batch 8"
      " --global-batch 8 --lr 3e-3 --warmup 20 --eval-every 125 --eval-windows 16"
      " --progress lines --metrics " +
      (dir / "m.jsonl") + " --data " + default_corpus_dir());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto metrics = read_metrics(dir / "m.jsonl");
  ASSERT_EQ(metrics.front()["step"], 0);
  const double first = metrics.front()["val_bpb"].get<double>();
  const double last = metrics.back()["val_bpb"].get<double>();
  // The untrained model is near uniform over 256 bytes (8 bits); a trained
  // byte model of English is far below. Require a real margin.
  EXPECT_GT(first, 7.0);
  EXPECT_LT(last, 0.55 * first) << "first " << first << " last " << last;
  for (const auto& m : metrics) {
    if (m["step"] == 0) continue;
    for (const char* key : {"loss", "lr", "grad_norm", "tokens_per_s", "comm_bytes"}) {
      EXPECT_TRUE(m.contains(key)) << key;
    }
  }
  EXPECT_NE(r.out.find("step 250/250"), std::string::npos) << r.out;
}

TEST(Train, ResumeIsBitExact) {
  require_corpus();
  TempDir dir;
  auto whole = run_linpar("train" + kQuickRun + " --steps 8 --metrics " + (dir / "whole.jsonl"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto first = run_linpar("train" + kQuickRun + " --steps 8 --exit-after 3 --ckpt-dir " +
                          (dir / "ckpt") + " --metrics " + (dir / "part.jsonl"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_TRUE(fs::exists(dir / "ckpt/step_00000003/meta.json"));
  auto second = run_linpar("train" + kQuickRun + " --steps 8 --resume --ckpt-dir " +
                           (dir / "ckpt") + " --metrics " + (dir / "part.jsonl"));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto a = step_lines(read_metrics(dir / "whole.jsonl")),
       b = step_lines(read_metrics(dir / "part.jsonl"));
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << a[i]["step"];
    EXPECT_EQ(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>());
    EXPECT_EQ(a[i]["lr"].get<double>(), b[i]["lr"].get<double>());
  }
}

TEST(Train, BrokenOrForeignCheckpointsAreRefused) {
  require_corpus();
  TempDir dir;
  auto r = run_linpar("train" + kQuickRun + " --steps 2 --ckpt-dir " + (dir / "ckpt") +
                      " --ckpt-every 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path step_dir = dir.path() / "ckpt/step_00000002";
  ASSERT_TRUE(fs::exists(step_dir / "rank_00000.h5"));

  // Another model: a clear mismatch naming the field.
  auto other = run_linpar("train" + kQuickRun + " --width 32 --steps 4 --resume --ckpt-dir " +
                          (dir / "ckpt"));
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("model mismatch: width"), std::string::npos) << other.err;

  // Truncated shard file.
  const auto size = fs::file_size(step_dir / "rank_00000.h5");
  fs::resize_file(step_dir / "rank_00000.h5", size / 2);
  auto truncated =
      run_linpar("train" + kQuickRun + " --steps 4 --resume --ckpt-dir " + (dir / "ckpt"));
  EXPECT_EQ(truncated.exit_code, 2) << truncated.err;
  EXPECT_NE(truncated.err.find("rank_00000.h5"), std::string::npos) << truncated.err;
  EXPECT_EQ(std::count(truncated.err.begin(), truncated.err.end(), '\n'), 1) << truncated.err;

  // Missing shard file and missing metadata.
  fs::remove(step_dir / "rank_00000.h5");
  auto missing = run_linpar("inspect " + step_dir.string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("missing"), std::string::npos) << missing.err;
  fs::remove(step_dir / "meta.json");
  auto no_meta = run_linpar("inspect " + step_dir.string());
  EXPECT_EQ(no_meta.exit_code, 2);
  EXPECT_NE(no_meta.err.find("meta.json"), std::string::npos) << no_meta.err;
}

TEST(Train, InspectListsTheShards) {
  require_corpus();
  TempDir dir;
  auto r = run_linpar("train" + kQuickRun + " --steps 1 --ckpt-dir " + (dir / "ckpt") +
                      " --ckpt-every 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto inspect = run_linpar("inspect " + (dir / "ckpt"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("step: 1"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("params/layers.1.channel_mixer.l3"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("optimizer/m/embedding"), std::string::npos) << inspect.out;
}

// `linpar train --dry-run` prints the simulator's memory model: for the same
// layout it gives the breakdown `linpar sim` gives, term by term (bf16 on
// the GPU, as the simulator prices; the dry-run needs no GPU), over layouts
// of every strategy, pipeline schedule, ZeRO, CO2 and model size.
TEST(Train, DryRunPrintsTheSimulatorsMemoryForEveryLayout) {
  struct Case {
    const char* model;
    int dp, tp, pp, sp;
    const char* extra;
  };
  const Case cases[] = {
      {"tnl-385m", 1, 1, 1, 1, ""},
      {"tnl-385m", 4, 1, 1, 1, "--zero 1"},
      {"tnl-385m", 2, 2, 1, 1, "--tp-sp"},
      {"tnl-385m", 1, 1, 4, 1, "--pp-schedule gpipe"},
      {"tnl-385m", 2, 1, 4, 1, "--pp-schedule 1f1b"},
      {"tnl-1b", 1, 1, 1, 4, "--sp-kind lasp"},
      {"tnl-1b", 2, 1, 1, 4, "--sp-kind lasp2 --zero 1"},
      {"tnl-1b", 1, 2, 1, 2, "--sp-kind allgather"},
      {"tnl-1b", 1, 2, 1, 2, "--sp-kind ulysses"},
      {"tnl-1b", 4, 1, 1, 1, "--co2-tau 4"},
      {"tnl-1b", 4, 1, 1, 1, "--co2-tau 4 --co2-shard-outer"},
      {"tnl-7b", 2, 4, 2, 2, "--tp-sp --sp-kind lasp --zero 1"},
      {"tnl-7b", 1, 8, 4, 1, "--tp-sp --pp-schedule gpipe"},
      {"tnl-175b", 2, 8, 8, 1, "--tp-sp"},
      {"tnl-175b", 1, 8, 16, 8, "--sp-kind lasp2 --zero 1"},
  };
  auto breakdown = [](const std::string& out) {
    const size_t at = out.find("    parameters ");
    if (at == std::string::npos) return std::string("(none in: " + out + ")");
    return out.substr(at, out.find('\n', at) - at);
  };
  for (const Case& c : cases) {
    const int world = c.dp * c.tp * c.pp * c.sp;
    const std::string layout = fmt::format(
        "--model {} --dp {} --tp {} --pp {} --sp {} --seq-len 8192 --micro-batch 1 --global-batch "
        "{} {}",
        c.model, c.dp, c.tp, c.pp, c.sp, 8 * c.dp, c.extra);
    const auto train = run_linpar("train --dry-run --device cuda " + layout);
    const auto sim = run_linpar(fmt::format("sim --gpus-per-node {} ", std::min(world, 8)) +
                                fmt::format("--nodes {} ", std::max(1, world / 8)) + layout);
    ASSERT_EQ(train.exit_code, 0) << layout << ": " << train.err;
    ASSERT_EQ(sim.exit_code, 0) << layout << ": " << sim.err;
    EXPECT_EQ(breakdown(train.out), breakdown(sim.out)) << layout;
  }
  // On the CPU the model runs in f32: parameters are the f32 values alone,
  // as large as the gradients; on the GPU in bf16 they add a 2-byte compute
  // copy to the f32 masters, 1.5 times the gradients.
  auto parameters_and_gradients = [&](const std::string& args) {
    const auto r = run_linpar(
        "train --dry-run --model tnl-385m --seq-len 8192 --micro-batch 1 --global-batch 1 " + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    double parameters = 0, gradients = 0;
    EXPECT_EQ(std::sscanf(breakdown(r.out).c_str(), " parameters %lf, gradients %lf", &parameters,
                          &gradients),
              2)
        << r.out;
    return std::pair{parameters, gradients};
  };
  const auto [cpu_parameters, cpu_gradients] = parameters_and_gradients("");
  EXPECT_GT(cpu_gradients, 1.0);
  EXPECT_EQ(cpu_parameters, cpu_gradients);
  const auto [gpu_parameters, gpu_gradients] = parameters_and_gradients("--device cuda");
  EXPECT_EQ(gpu_gradients, cpu_gradients);
  EXPECT_NEAR(gpu_parameters / gpu_gradients, 1.5, 0.01);
}

}  // namespace linpar
