#include "model/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "core/log.h"
#include "core/progress.h"
#include "core/timer.h"
#include "model/checkpoint.h"
#include "model/data_loader.h"
#include "model/token_file.h"

namespace linpar {

void validate_train_options(const TrainOptions& o) {
  o.model.validate();
  auto positive = [](const char* option, int64_t v) {
    if (v <= 0) user_error("{} {}: must be positive", option, v);
  };
  positive("--seq-len", o.seq_len);
  positive("--micro-batch", o.micro_batch);
  positive("--global-batch", o.global_batch);
  positive("--steps", o.steps);
  if (o.global_batch % o.micro_batch != 0) {
    user_error("--global-batch {} must be a multiple of --micro-batch {}", o.global_batch,
               o.micro_batch);
  }
  if (!(o.schedule.max_lr > 0)) user_error("--lr {}: must be positive", o.schedule.max_lr);
  if (o.schedule.min_lr_ratio < 0 || o.schedule.min_lr_ratio > 1) {
    user_error("--min-lr-ratio {}: must be in [0, 1]", o.schedule.min_lr_ratio);
  }
  if (o.schedule.warmup_steps < 0) user_error("--warmup {}: must be >= 0", o.schedule.warmup_steps);
  if (o.adamw.beta1 < 0 || o.adamw.beta1 >= 1)
    user_error("--beta1 {}: must be in [0, 1)", o.adamw.beta1);
  if (o.adamw.beta2 < 0 || o.adamw.beta2 >= 1)
    user_error("--beta2 {}: must be in [0, 1)", o.adamw.beta2);
  if (o.adamw.weight_decay < 0) user_error("--weight-decay {}: must be >= 0", o.adamw.weight_decay);
  if (o.eval_every < 0) user_error("--eval-every {}: must be >= 0", o.eval_every);
  if (o.eval_windows <= 0) user_error("--eval-windows {}: must be positive", o.eval_windows);
  if (o.ckpt_every < 0) user_error("--ckpt-every {}: must be >= 0", o.ckpt_every);
  if (o.ckpt_every > 0 && o.ckpt_dir.empty())
    user_error("--ckpt-every {} needs --ckpt-dir", o.ckpt_every);
  if (o.resume && o.ckpt_dir.empty()) user_error("--resume needs --ckpt-dir");
  if (o.resume && !o.init_from.empty()) user_error("--resume and --init-from exclude each other");
  if (o.exit_after < 0) user_error("--exit-after {}: must be >= 0", o.exit_after);
}

Trainer::Trainer(const TrainOptions& options) : options_(options) {
  validate_train_options(options_);
  train_file_ = std::make_unique<TokenFile>(options_.train_path);
  if (train_file_->vocab_size() > options_.model.vocab_size) {
    user_error("--data {}: tokens come from a vocabulary of {}, larger than the model's {}",
               options_.train_path, train_file_->vocab_size(), options_.model.vocab_size);
  }
  if (!options_.val_path.empty()) val_file_ = std::make_unique<TokenFile>(options_.val_path);
  loader_ = std::make_unique<DataLoader>(*train_file_, options_.seq_len, options_.seed);
  model_ = std::make_unique<TransNormerLLM>(options_.model, options_.seed, options_.dtype);
  optimizer_ = std::make_unique<AdamW>(options_.adamw, model_->params());
}

Trainer::~Trainer() = default;

StepResult Trainer::train_step() {
  Timer timer;
  const int64_t micro_steps = options_.global_batch / options_.micro_batch;
  const int64_t B = options_.micro_batch, N = options_.seq_len;
  Tensor inputs = Tensor::empty({B, N}, DType::I32), targets = Tensor::empty({B, N}, DType::I32);
  model_->params().zero_grad();
  double loss = 0;
  TransNormerLLM::Cache cache;
  for (int64_t micro = 0; micro < micro_steps; ++micro) {
    loader_->next_batch(B, inputs.data<int32_t>(), targets.data<int32_t>());
    loss += model_->forward(inputs, targets, cache) / static_cast<double>(micro_steps);
    model_->backward(cache, 1.0 / static_cast<double>(micro_steps));
  }
  StepResult result;
  result.grad_norm = clip_grad_norm(model_->params(), options_.grad_clip);
  result.lr = options_.schedule.at(step_);
  optimizer_->step(result.lr);
  ++step_;
  result.step = step_;
  result.loss = loss;
  result.tokens_per_s = static_cast<double>(options_.global_batch * N) / timer.elapsed_s();
  return result;
}

EvalResult Trainer::evaluate() {
  LINPAR_CHECK(val_file_ != nullptr, "evaluate() without a validation file");
  const int64_t N = options_.seq_len;
  std::vector<int64_t> starts = eval_window_starts(val_file_->size(), N, options_.eval_windows);
  if (starts.empty())
    user_error("validation file {} holds fewer than --seq-len + 1 = {} tokens", options_.val_path,
               N + 1);
  double total = 0;
  TransNormerLLM::Cache cache;
  for (size_t first = 0; first < starts.size();
       first += static_cast<size_t>(options_.micro_batch)) {
    const int64_t B =
        std::min<int64_t>(options_.micro_batch, static_cast<int64_t>(starts.size() - first));
    Tensor inputs = Tensor::empty({B, N}, DType::I32), targets = Tensor::empty({B, N}, DType::I32);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = starts[first + static_cast<size_t>(b)];
      val_file_->copy(s, N, inputs.data<int32_t>() + b * N);
      val_file_->copy(s + 1, N, targets.data<int32_t>() + b * N);
    }
    total += model_->forward(inputs, targets, cache) * static_cast<double>(B);
  }
  EvalResult result;
  result.loss = total / static_cast<double>(starts.size());
  result.bits_per_byte = result.loss / std::numbers::ln2 * options_.val_tokens_per_byte;
  return result;
}

std::string Trainer::save() {
  CheckpointMeta meta;
  meta.step = step_;
  meta.data_position = loader_->position();
  meta.extra = {{"seed", options_.seed},
                {"seq_len", options_.seq_len},
                {"global_batch", options_.global_batch},
                {"micro_batch", options_.micro_batch},
                {"train_data", options_.train_path}};
  return save_checkpoint(options_.ckpt_dir, *model_, *optimizer_, meta);
}

void Trainer::write_metrics(const StepResult& r, const std::optional<EvalResult>& eval) {
  if (options_.metrics_path.empty()) return;
  nlohmann::json line = {{"step", r.step},
                         {"loss", r.loss},
                         {"lr", r.lr},
                         {"grad_norm", r.grad_norm},
                         {"tokens_per_s", r.tokens_per_s},
                         // One process: nothing crosses a process boundary.
                         {"comm_bytes", {{"dp", 0}, {"tp", 0}, {"pp", 0}, {"sp", 0}}}};
  if (eval) {
    line["val_loss"] = eval->loss;
    line["val_bpb"] = eval->bits_per_byte;
  }
  std::ofstream out(options_.metrics_path, std::ios::app);
  out << line.dump() << "\n";
  if (!out) user_error("--metrics {}: cannot write", options_.metrics_path);
}

void Trainer::run() {
  if (options_.resume) {
    const std::string dir = latest_checkpoint(options_.ckpt_dir);
    if (dir.empty()) user_error("--resume: no checkpoint under --ckpt-dir {}", options_.ckpt_dir);
    CheckpointMeta meta = load_checkpoint(dir, *model_, optimizer_.get());
    step_ = meta.step;
    loader_->set_position(meta.data_position);
    log::info("resumed from {} at step {}", dir, step_);
  } else {
    if (!options_.init_from.empty()) {
      // Weights only: optimizer state and step start fresh (fine-tuning from
      // released weights converted by `linpar convert`).
      std::string dir = options_.init_from;
      if (!std::filesystem::exists(std::filesystem::path(dir) / "meta.json")) {
        const std::string latest = latest_checkpoint(dir);
        if (!latest.empty()) dir = latest;
      }
      load_checkpoint(dir, *model_, nullptr);
      log::info("initialised weights from {}", dir);
    }
    if (!options_.metrics_path.empty()) {
      std::ofstream truncate(options_.metrics_path, std::ios::trunc);
      if (!truncate) user_error("--metrics {}: cannot write", options_.metrics_path);
    }
  }
  if (step_ >= options_.steps) {
    log::info("nothing to do: step {} >= --steps {}", step_, options_.steps);
    return;
  }
  ProgressBar::Mode mode = ProgressBar::mode_for_stdout();
  if (options_.progress == TrainOptions::Progress::Bar) mode = ProgressBar::Mode::Bar;
  if (options_.progress == TrainOptions::Progress::Lines) mode = ProgressBar::Mode::Lines;
  if (options_.progress == TrainOptions::Progress::Quiet) mode = ProgressBar::Mode::Quiet;
  const int64_t last_step = options_.exit_after > 0
                                ? std::min(options_.steps, step_ + options_.exit_after)
                                : options_.steps;
  ProgressBar bar(step_, options_.steps, mode);
  if (val_file_ && step_ == 0) {
    // The untrained model's validation score: the baseline the run improves on.
    EvalResult eval = evaluate();
    bar.message(
        fmt::format("step 0: val_loss {:.4f} val_bpb {:.4f}", eval.loss, eval.bits_per_byte));
    if (!options_.metrics_path.empty()) {
      std::ofstream out(options_.metrics_path, std::ios::app);
      out << nlohmann::json{{"step", 0}, {"val_loss", eval.loss}, {"val_bpb", eval.bits_per_byte}}
                 .dump()
          << "\n";
    }
  }
  while (step_ < last_step) {
    StepResult r = train_step();
    std::optional<EvalResult> eval;
    const bool eval_now =
        val_file_ &&
        ((options_.eval_every > 0 && step_ % options_.eval_every == 0) || step_ == options_.steps);
    if (eval_now) {
      eval = evaluate();
      bar.message(fmt::format("step {}: val_loss {:.4f} val_bpb {:.4f}", step_, eval->loss,
                              eval->bits_per_byte));
    }
    write_metrics(r, eval);
    bar.update(step_,
               fmt::format("loss {:.4f} lr {:.2e} {:.0f} tok/s", r.loss, r.lr, r.tokens_per_s));
    const bool checkpoint_now =
        (options_.ckpt_every > 0 && step_ % options_.ckpt_every == 0) ||
        (!options_.ckpt_dir.empty() && step_ == last_step && last_step < options_.steps);
    if (checkpoint_now) bar.message("checkpoint " + save());
  }
  bar.finish();
}

}  // namespace linpar
