// End-to-end training through the CLI on the default corpus: the loss really
// falls, resume is bit-exact, and broken or foreign checkpoints are refused.
#include <gtest/gtest.h>

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

}  // namespace linpar
