// Shared by the MPI training tests: small runs of the real trainer and the
// comparisons that say two runs trained the same model.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "parallel/trainer.h"

namespace linpar::testing {

inline TrainOptions quick_options(int dp, int zero) {
  TrainOptions o;
  o.model = preset_config("tnl-tiny");
  o.layout.dp = dp;
  o.layout.zero = zero;
  o.train_path = std::string(LINPAR_SOURCE_DIR) + "/data/kjv/train.bin";
  o.layout.seq_len = 24;
  o.layout.micro_batch = 2;
  o.layout.global_batch = 8;
  o.steps = 4;
  o.schedule.max_lr = 3e-3;
  o.schedule.warmup_steps = 1;
  o.schedule.total_steps = 4;
  o.progress = TrainOptions::Progress::Quiet;
  return o;
}

struct TrainingRun {
  std::vector<StepResult> steps;
  std::vector<std::vector<double>> params;
  std::vector<std::vector<double>> grads;  // of the last step (averaged over DP)
};

inline TrainingRun train(const TrainOptions& o, ProcessGrid& grid, int steps,
                         const SequenceAttentionFactory& make_attention = {},
                         const OuterLoopFactory& make_outer = {}) {
  Trainer trainer(o, grid, make_attention, make_outer);
  TrainingRun run;
  for (int s = 0; s < steps; ++s) run.steps.push_back(trainer.train_step());
  for (const Tensor& value : trainer.parameter_values())
    run.params.push_back(value.to(DType::F64).to_vector<double>());
  for (const Parameter& p : trainer.model().params().all()) {
    // (ZeRO-2 and -3 keep no whole gradient after the step.)
    if (p.grad.defined()) run.grads.push_back(p.grad.to(DType::F64).to_vector<double>());
  }
  return run;
}

inline double relative(double a, double b) {
  return std::abs(a - b) / std::max({std::abs(a), std::abs(b), 1e-12});
}

// Largest |a − b| over a tensor, relative to the tensor's largest |a|.
inline double tensor_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(a[i]));
  }
  return worst / std::max(scale, 1e-30);
}

inline void expect_same_losses(const TrainingRun& a, const TrainingRun& b, double tolerance) {
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t s = 0; s < a.steps.size(); ++s) {
    EXPECT_LT(relative(a.steps[s].loss, b.steps[s].loss), tolerance) << "step " << s + 1;
    EXPECT_LT(relative(a.steps[s].grad_norm, b.steps[s].grad_norm), tolerance) << "step " << s + 1;
  }
}

inline void expect_same_tensors(const std::vector<std::vector<double>>& a,
                                const std::vector<std::vector<double>>& b, double tolerance,
                                const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p)
    EXPECT_LT(tensor_difference(a[p], b[p]), tolerance) << what << " " << p;
}

inline void expect_same_training(const TrainingRun& a, const TrainingRun& b, double tolerance) {
  expect_same_losses(a, b, tolerance);
  expect_same_tensors(a.params, b.params, tolerance, "parameter");
}

// Rank 0's value of a path (each rank made its own temporary directory; the
// checkpoint of a multi-rank run must live in one of them).
inline std::string rank0_path(std::string path) {
  int length = static_cast<int>(path.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  path.resize(static_cast<size_t>(length));
  MPI_Bcast(path.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  return path;
}

// Wire bytes of an all-reduce of `bytes` per rank (ring): 2(n−1)/n of it.
inline int64_t all_reduce_bytes(int64_t ranks, int64_t bytes) { return 2 * (ranks - 1) * bytes / ranks; }

inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

}  // namespace linpar::testing
