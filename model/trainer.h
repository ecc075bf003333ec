// One process's training loop: micro-batches with gradient accumulation,
// clipping, AdamW with warmup + cosine, periodic validation in bits per byte,
// JSON-lines metrics, a progress bar, checkpoints and bit-exact resume.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/config.h"
#include "model/optimizer.h"
#include "model/transnormer.h"

namespace linpar {

class TokenFile;
class DataLoader;

struct TrainOptions {
  ModelConfig model;
  DType dtype = DType::F32;
  std::string train_path;            // token file
  std::string val_path;              // token file, or "" for no validation
  double val_tokens_per_byte = 1.0;  // converts nats/token into bits/byte
  int64_t seq_len = 128;
  int64_t micro_batch = 8;
  int64_t global_batch = 8;  // samples per optimizer step (a multiple of micro_batch)
  int64_t steps = 100;
  LrSchedule schedule;
  AdamWConfig adamw;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  int64_t eval_every = 50;    // 0: only at the end
  int64_t eval_windows = 32;  // validation windows of seq_len tokens
  std::string ckpt_dir;
  int64_t ckpt_every = 0;
  bool resume = false;
  std::string init_from;  // start from these weights (a checkpoint dir, e.g. from `linpar convert`)
  int64_t exit_after = 0;  // stop after this many steps in this invocation (0: run to --steps)
  std::string metrics_path;
  enum class Progress { Auto, Bar, Lines, Quiet } progress = Progress::Auto;
};

struct StepResult {
  int64_t step = 0;  // 1-based index of the step just taken
  double loss = 0;   // mean over the global batch
  double lr = 0;
  double grad_norm = 0;  // before clipping
  double tokens_per_s = 0;
};

struct EvalResult {
  double loss = 0;  // nats per token
  double bits_per_byte = 0;
};

class Trainer {
 public:
  explicit Trainer(const TrainOptions& options);
  ~Trainer();

  // The whole run: resume if asked, steps with evaluation, metrics, checkpoints.
  void run();

  StepResult train_step();
  EvalResult evaluate();
  std::string save();  // a checkpoint of the current state; returns its directory

  int64_t step() const { return step_; }
  TransNormerLLM& model() { return *model_; }

 private:
  void write_metrics(const StepResult& result, const std::optional<EvalResult>& eval);

  TrainOptions options_;
  std::unique_ptr<TokenFile> train_file_, val_file_;
  std::unique_ptr<DataLoader> loader_;
  std::unique_ptr<TransNormerLLM> model_;
  std::unique_ptr<AdamW> optimizer_;
  int64_t step_ = 0;
};

// Validates options that need no data (batch divisibility, positive sizes);
// UserError naming the option and the rule.
void validate_train_options(const TrainOptions& options);

}  // namespace linpar
