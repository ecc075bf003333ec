// One process's training loop: micro-batches with gradient accumulation,
// clipping, AdamW with warmup + cosine, periodic validation in bits per byte,
// JSON-lines metrics, a progress bar, checkpoints and bit-exact resume.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/hdf5_file.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/layout.h"
#include "model/optimizer.h"
#include "model/pipeline_schedule.h"
#include "model/transnormer.h"
#include "parallel/data_parallel.h"
#include "parallel/process_grid.h"
#include "parallel/zero.h"

namespace linpar {

class TokenFile;
class DataLoader;

struct TrainOptions {
  // The trainer's defaults for the layout's batch: 128 tokens, micro-batches
  // and steps of 8 samples.
  static Layout trainer_defaults() {
    Layout l;
    l.seq_len = 128;
    l.micro_batch = 8;
    l.global_batch = 8;
    return l;
  }
  ModelConfig model;
  // The degrees, strategies and batch (model/layout.h: the layout `linpar
  // sim` and `search` read, validated by the same validate_layout). The
  // trainer runs one model chunk per stage and takes CO2's τ from its outer
  // loop (co2/); validate_train_options refuses the rest.
  Layout layout = trainer_defaults();
  double emulated_dp_gbps = 0;     // experiments: DP all-reduces held to this bandwidth (0: off)
  int64_t bucket_bytes = 4 << 20;  // DDP gradient bucket size
  // The activations' dtype. On the GPU (device CUDA) parameters, gradients
  // and AdamW state stay f32 and `dtype` may be bf16 (mixed precision); the
  // CPU computes everything in `dtype` (f32 or f64).
  DType dtype = DType::F32;
  Device device = Device::CPU;
  std::string train_path;            // token file
  std::string val_path;              // token file, or "" for no validation
  double val_tokens_per_byte = 1.0;  // converts nats/token into bits/byte
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
  // Wall time of this rank's step in two phases (the GPU synchronised at the
  // boundary): forward and backward of every micro-batch with their
  // communication, then gradient reduction, clipping and the update.
  double compute_s = 0;
  double optimizer_s = 0;
  int64_t peak_rss_bytes = 0;  // peak resident memory, the largest over ranks
  // Set on steps that end an outer round of a DP outer loop (CO2), else < 0:
  double outer_overlap = -1;     // fraction of the outer all-reduce hidden behind compute
  double outer_update_norm = -1;  // ‖the outer update applied‖ (0 while none is due yet)
  std::array<int64_t, 4> comm_bytes{};  // dp, tp, pp, sp: bytes sent this step, summed over ranks
};

struct EvalResult {
  double loss = 0;  // nats per token
  double bits_per_byte = 0;
};

// A data-parallel outer loop that replaces the per-step gradient all-reduce
// (CO2, co2/): the trainer runs local optimizer steps and hands over after
// each; parallel/ knows only this interface (co2/ depends on parallel/).
class OuterLoop {
 public:
  virtual ~OuterLoop() = default;
  // After inner step `step` (1-based) of this rank; may replace the parameters
  // (returns whether it did: their compute copies are then refreshed) and
  // fills the outer metrics when a round ends.
  virtual bool after_step(int64_t step, StepResult& result) = 0;
  // Bytes this rank's outer communication has sent so far (DP traffic).
  virtual int64_t bytes_sent() const = 0;

  // Checkpoints. Every rank first completes its in-flight communication (the
  // result is kept, to be applied when the uninterrupted run would apply it);
  // then the writers save: the replica-independent state when `shared` (one
  // writer per model shard), and always this replica's own under
  // `replica_prefix`. describe() goes into meta.json.
  virtual void complete_in_flight() = 0;
  virtual void save(Hdf5File& file, bool shared, const std::string& replica_prefix) = 0;
  virtual nlohmann::json describe() const = 0;
  // Restores what save() wrote (meta: the describe() object).
  virtual void load(const CheckpointReader& reader, const nlohmann::json& meta,
                    const std::string& replica_prefix) = 0;
  // Starts over from the current parameters (after loading a checkpoint
  // written without this outer loop).
  virtual void reset_from_parameters() = 0;
};
using OuterLoopFactory = std::function<std::unique_ptr<OuterLoop>(ParameterSet& params,
                                                                  ProcessGrid& grid)>;

class Trainer {
 public:
  // make_attention builds the sequence-parallel strategy (needed when
  // layout.sp > 1; lasp::make_sequence_attention).
  // make_outer, when given, turns data parallelism into that outer loop (no
  // gradient all-reduce over DP; co2::make_outer_loop).
  Trainer(const TrainOptions& options, ProcessGrid& grid,
          const SequenceAttentionFactory& make_attention = {},
          const OuterLoopFactory& make_outer = {});
  ~Trainer();

  // The whole run: resume if asked, steps with evaluation, metrics, checkpoints.
  void run();

  StepResult train_step();
  EvalResult evaluate();
  std::string save();  // a checkpoint of the current state; returns its directory
  // Loads a checkpoint written under any layout: weights, and with
  // with_optimizer the optimizer state, step and data position.
  void load(const std::string& dir, bool with_optimizer);

  // Every parameter's whole value, copied (under ZeRO-3 gathered: every
  // rank of the data-parallel group calls it).
  std::vector<Tensor> parameter_values();

  int64_t step() const { return step_; }
  TransNormerLLM& model() { return *model_; }

 private:
  void write_metrics(const StepResult& result, const std::optional<EvalResult>& eval);
  AdamW& optimizer() { return zero_ ? zero_->optimizer() : *optimizer_; }
  // Sum over the world of per-rank values (metrics; not counted as training traffic).
  std::vector<double> world_sum(std::vector<double> values);

  TrainOptions options_;
  ProcessGrid& grid_;
  TensorParallel tp_;
  PipelineStage stage_;
  // Sums a value over the groups holding disjoint parts of the model (TP, PP).
  void sum_over_model_parallel(Tensor& t);
  // Bytes of pipeline traffic so far: the PP group's plus the embedding group's.
  int64_t pipeline_bytes();
  // DP traffic so far: gradient reduction and the outer loop's.
  int64_t data_parallel_bytes();
  // Where this DP replica's own state lives in a checkpoint (outer loops).
  std::string replica_prefix() const;
  std::unique_ptr<SequenceAttention> attention_;  // before model_, which points to it
  SequenceParallel sp_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::unique_ptr<ZeroOptimizer> zero_;
  std::unique_ptr<TokenFile> train_file_, val_file_;
  std::unique_ptr<DataLoader> loader_;
  std::unique_ptr<TransNormerLLM> model_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<OuterLoop> outer_;
  int64_t step_ = 0;
};

// Validates options that need no data (batch divisibility, positive sizes);
// UserError naming the option and the rule.
void validate_train_options(const TrainOptions& options);

}  // namespace linpar
