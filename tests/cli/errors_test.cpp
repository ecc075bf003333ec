// The error contract: bad input gives one line on stderr naming the value and
// the rule, exit status 2, and nothing written.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "run_linpar.h"

namespace linpar {

using testing::run_linpar;
using testing::TempDir;

namespace {
void expect_user_error(const std::string& args, const std::string& must_mention) {
  auto r = run_linpar(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << args << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("linpar: error: ", 0), 0u) << r.err;
}
}  // namespace

TEST(CliErrors, UnknownCommandAndOption) {
  expect_user_error("frobnicate", "frobnicate");
  expect_user_error("train --no-such-option 3", "no-such-option");
}

TEST(CliErrors, BadNumbersNameTheOption) {
  expect_user_error("train --dry-run --steps abc", "steps");
  expect_user_error("train --dry-run --steps 0", "--steps 0");
  expect_user_error("train --dry-run --seq-len -5", "--seq-len -5");
  expect_user_error("train --dry-run --micro-batch 3 --global-batch 8",
                    "multiple of --micro-batch 3");
  expect_user_error("train --dry-run --lr -1", "--lr -1");
}

TEST(CliErrors, BadModelOptions) {
  expect_user_error("train --dry-run --model tnl-nope", "tnl-nope");
  expect_user_error("train --dry-run --model tnl-tiny --heads 3", "divisible by heads 3");
  expect_user_error("train --dry-run --lrpe sometimes", "sometimes");
  expect_user_error("train --dry-run --device tpu", "--device tpu");
}

TEST(CliErrors, LayoutsThatDoNotFitAreRefusedBeforeAnyCompute) {
  expect_user_error("train --dp 2 --global-batch 8 --micro-batch 2 --steps 1", "needs 2 processes, but 1 were started");
  expect_user_error("train --dry-run --dp 2 --global-batch 6 --micro-batch 2",
                    "--global-batch 6 must be a multiple of --dp 2 × --micro-batch 2 = 4");
  expect_user_error("train --dry-run --dp 0", "--dp 0");
  expect_user_error("train --dry-run --zero 4", "--zero 4");
  expect_user_error("train --dry-run --tp 3", "heads 4 must be divisible by tp");
  expect_user_error("train --dry-run --tp 2 --glu-dim 127", "glu-dim 127 must be divisible by tp");
  expect_user_error("train --dry-run --pp 4", "2 layers do not give every stage a layer");
  expect_user_error("train --dry-run --pp 2 --pp-schedule zigzag", "--pp-schedule zigzag");
  expect_user_error("train --dry-run --tp 2 --vocab-size 257", "vocab-size 257 must be divisible by tp");
  expect_user_error("train --dry-run --sp 0", "--sp 0: must be positive");
  expect_user_error("train --dry-run --sp 3 --seq-len 128", "--seq-len 128 must be divisible by --sp 3");
  expect_user_error("train --dry-run --sp 8 --sp-kind ulysses --seq-len 128",
                    "--sp-kind ulysses: the 4 heads per TP rank must be divisible by --sp 8");
  expect_user_error("train --dry-run --tp 2 --sp 4 --sp-kind ulysses --seq-len 128",
                    "the 2 heads per TP rank must be divisible by --sp 4");
  expect_user_error("train --dry-run --sp 2 --sp-kind ring", "--sp-kind ring: expected lasp, lasp2, allgather or ulysses");
  expect_user_error("train --sp 2 --seq-len 128 --steps 1", "needs 2 processes, but 1 were started");
  expect_user_error("train --dry-run --tp-sp", "--tp-sp needs --tp > 1 (got --tp 1)");
  expect_user_error("train --dry-run --co2-tau -1", "--co2-tau -1: must be >= 0");
  expect_user_error("train --dry-run --co2-tau 4 --zero 1", "--co2-tau 4 with --zero 1");
  expect_user_error("train --dry-run --co2-tau 4 --co2-outer-lr 0", "--co2-outer-lr 0: must be positive");
  expect_user_error("train --dry-run --co2-tau 4 --co2-outer-momentum 1", "--co2-outer-momentum 1: must be below 1");
  expect_user_error("train --dry-run --co2-tau 4 --co2-gap-penalty -2", "--co2-gap-penalty -2: must be positive");
  expect_user_error("train --dry-run --optimizer lion", "--optimizer lion: expected adamw or sgd");
  expect_user_error("train --dry-run --tp 4 --tp-sp --sp 2 --seq-len 36",
                    "--tp-sp: --seq-len 36 must be divisible by --sp 2 × --tp 4");
}

TEST(CliErrors, MissingDataAndConfig) {
  TempDir dir;
  expect_user_error("train --data " + (dir / "nothing.bin") + " --steps 1", "nothing.bin");
  expect_user_error("train --config " + (dir / "missing.ini") + " --dry-run", "missing.ini");
  std::ofstream(dir / "bad.ini") << "steps = many\n";
  expect_user_error("train --config " + (dir / "bad.ini") + " --dry-run", "steps");
}

TEST(CliErrors, ConfigFileValuesAndCommandLineWins) {
  TempDir dir;
  std::ofstream(dir / "run.ini") << "model = tnl-385m\nseq-len = 2048\n";
  auto from_file = run_linpar("train --config " + (dir / "run.ini") + " --dry-run");
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_NE(from_file.out.find("model: tnl-385m"), std::string::npos) << from_file.out;
  auto overridden =
      run_linpar("train --config " + (dir / "run.ini") + " --model tnl-tiny --dry-run");
  ASSERT_EQ(overridden.exit_code, 0) << overridden.err;
  EXPECT_NE(overridden.out.find("model: tnl-tiny"), std::string::npos) << overridden.out;
}

TEST(CliErrors, HelpForEachCommand) {
  for (const char* command : {"train", "inspect", "convert", "prepare-data", "presets"}) {
    auto r = run_linpar(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << command << r.err;
    EXPECT_NE(r.out.find("usage: linpar " + std::string(command)), std::string::npos) << r.out;
  }
}

TEST(CliDryRun, PrintsTheParameterCountAndMemory) {
  auto r = run_linpar("train --model tnl-tiny --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("parameters: "), std::string::npos);
  EXPECT_NE(r.out.find("memory per rank"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    parameters "), std::string::npos) << r.out;  // the breakdown
}

// A user error of one rank alone is printed by that rank: under mpirun's
// MPMD form rank 1 gets a bad --seq-len while rank 0 goes on into the
// process grid and waits there; the job ends with rank 1's one line and
// exit status 2. An error every rank meets is printed once.
TEST(CliErrors, AnErrorOfOneRankIsPrintedByThatRank) {
  const std::string good =
      std::string(" -np 1 ") + LINPAR_BINARY +
      " train --model tnl-tiny --dp 2 --global-batch 4 --micro-batch 2 --steps 1 --data " +
      testing::default_corpus_dir();
  const std::string bad =
      std::string(" -np 1 ") + LINPAR_BINARY +
      " train --model tnl-tiny --dp 2 --global-batch 4 --micro-batch 2 --steps 1 --seq-len -5";
  testing::TempDir scratch;
  const std::string err = scratch / "err";
  const int status =
      std::system((testing::mpirun() + good + " :" + bad + " >/dev/null 2>" + err).c_str());
  const std::string printed = testing::read_file(err);
  EXPECT_NE(status, 0);
  EXPECT_NE(printed.find("rank 1: linpar: error: --seq-len -5: must be positive"),
            std::string::npos)
      << printed;
  // Both ranks refuse the same option: one line, rank 0's.
  const std::string both = testing::mpirun() + " -np 2 " + LINPAR_BINARY +
                           " train --model tnl-tiny --seq-len -5 --dp 2 >/dev/null 2>" + err;
  EXPECT_NE(std::system(both.c_str()), 0);
  const std::string once = testing::read_file(err);
  EXPECT_NE(once.find("linpar: error: --seq-len -5: must be positive"), std::string::npos) << once;
  EXPECT_EQ(once.find("rank 1: linpar"), std::string::npos) << once;
}

}  // namespace linpar
