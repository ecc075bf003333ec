#include "parallel/trainer.h"

#include <sys/resource.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "core/cuda/cuda_runtime.h"
#include "core/hdf5_file.h"
#include "core/log.h"
#include "core/op_timing.h"
#include "core/progress.h"
#include "core/timer.h"
#include "model/checkpoint.h"
#include "model/config_io.h"
#include "model/data_loader.h"
#include "model/pipeline_schedule.h"
#include "model/token_file.h"
#include "parallel/pipeline.h"
#include "parallel/step_update.h"

namespace linpar {

void validate_train_options(const TrainOptions& o) {
  o.model.validate();
  auto positive = [](const char* option, int64_t v) {
    if (v <= 0) user_error("{} {}: must be positive", option, v);
  };
  positive("--steps", o.steps);
  validate_layout(o.model, o.layout);  // the rules `linpar sim` and `search` apply
  if (o.device == Device::CPU && o.dtype != DType::F32 && o.dtype != DType::F64) {
    user_error("--dtype {}: the CPU trains in f32 or f64 (bf16 needs --device cuda)", dtype_name(o.dtype));
  }
  if (o.device == Device::CUDA && o.dtype != DType::F32 && o.dtype != DType::BF16) {
    user_error("--dtype {}: the GPU trains in bf16 (mixed precision) or f32", dtype_name(o.dtype));
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

Trainer::Trainer(const TrainOptions& options, ProcessGrid& grid,
                 const SequenceAttentionFactory& make_attention, const OuterLoopFactory& make_outer)
    : options_(options),
      grid_(grid),
      tp_{&grid.tp(), grid.coordinates().tp, grid.tp().size(), options.layout.tp_sp} {
  validate_train_options(options_);
  if (grid_.sp().size() > 1) {
    LINPAR_CHECK(make_attention, "--sp {} without a sequence-parallel strategy factory",
                 grid_.sp().size());
    attention_ = make_attention(options_.layout.sp_kind, grid_.sp());
    sp_ = SequenceParallel{attention_.get(), grid_.coordinates().sp, grid_.sp().size()};
  }
  train_file_ = std::make_unique<TokenFile>(options_.train_path);
  if (train_file_->vocab_size() > options_.model.vocab_size) {
    user_error("--data {}: tokens come from a vocabulary of {}, larger than the model's {}",
               options_.train_path, train_file_->vocab_size(), options_.model.vocab_size);
  }
  if (!options_.val_path.empty()) val_file_ = std::make_unique<TokenFile>(options_.val_path);
  loader_ = std::make_unique<DataLoader>(*train_file_, options_.layout.seq_len, options_.seed);
  // The stage's model chunks: virtual stages c·pp + s of pp·v (one, the
  // stage itself, without interleaving), as the simulator places them.
  const int pp = grid_.pp().size(), v = options_.layout.pp_chunks;
  std::vector<PipelineStage> chunks;
  for (int c = 0; c < v; ++c) {
    chunks.push_back(pipeline_stage(options_.model, c * pp + grid_.coordinates().pp, pp * v));
  }
  if (options_.device == Device::CUDA) {
    if (!cuda::available()) user_error("--device cuda: no CUDA device is present on this machine");
    LINPAR_CHECK(grid_.device() == Device::CUDA || grid_.world().size() == 1,
                 "--device cuda needs a process grid built for CUDA (NCCL groups)");
  }
  // On the GPU the parameters are f32 master weights whatever the compute dtype.
  const DType param_dtype = options_.device == Device::CUDA ? DType::F32 : options_.dtype;
  model_ = std::make_unique<TransNormerLLM>(options_.model, options_.seed, param_dtype, tp_, chunks,
                                            sp_);
  stage_ = model_->stage();
  model_->set_recompute(options_.layout.recompute);
  if (options_.device == Device::CUDA) model_->place(Device::CUDA, options_.dtype);
  // Gradients are averaged over DP replicas and SP ranks alike (each SP rank's
  // loss is the mean over its chunk, and the chunks are equal).
  Communicator& data_parallel = grid_.data_parallel();
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(&data_parallel)) {
    mpi->set_emulated_gbps(options_.emulated_dp_gbps);
  } else if (options_.emulated_dp_gbps > 0) {
    user_error("--emulate-dp-gbps {}: emulates a slow link for the CPU's MPI backend only",
               options_.emulated_dp_gbps);
  }
  // Local steps under an outer loop (CO2): no gradient reduction over DP;
  // the outer loop synchronises the replicas. The SP ranks of one replica
  // hold one model and still average their chunks' gradients every step
  // (counted as SP traffic). (ZeRO-1 excludes an outer loop: validate_layout.)
  const bool outer = make_outer && options_.layout.zero == 0;
  StepOptimizer o = make_step_optimizer(
      model_->params(), model_->parameter_groups(), outer ? grid_.sp() : data_parallel,
      options_.layout.zero, options_.adamw, [this](Tensor& t) { sum_over_model_parallel(t); },
      options_.bucket_bytes);
  model_->set_parameter_hooks(o.hooks());
  buckets_ = std::move(o.buckets);
  zero_ = std::move(o.zero);
  optimizer_ = std::move(o.adamw);
  if (outer) outer_ = make_outer(model_->params(), grid_);
}

Trainer::~Trainer() = default;

void Trainer::sum_over_model_parallel(Tensor& t) {
  tp_.all_reduce(t);
  if (grid_.pp().size() > 1) grid_.pp().all_reduce(t);
}

std::string Trainer::replica_prefix() const {
  return fmt::format("co2/replica{}/", grid_.coordinates().dp);
}

int64_t Trainer::data_parallel_bytes() {
  return grid_.data_parallel().counters().total_bytes() + (outer_ ? outer_->bytes_sent() : 0);
}

int64_t Trainer::pipeline_bytes() {
  const Communicator* e = grid_.embedding();
  const int64_t pp =
      grid_.pp().counters().total_bytes() +
      (&grid_.pp_gradients() != &grid_.pp() ? grid_.pp_gradients().counters().total_bytes() : 0);
  return pp + (e != nullptr ? e->counters().total_bytes() : 0);
}

std::vector<double> Trainer::world_sum(std::vector<double> values) {
  if (grid_.world().size() == 1) return values;
  Tensor t = Tensor::from_vector<double>({static_cast<int64_t>(values.size())}, values);
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(values.size()), MPI_DOUBLE,
                          MPI_SUM, static_cast<MpiCommunicator&>(grid_.world()).comm()));
  return t.to_vector<double>();
}

StepResult Trainer::train_step() {
  Timer timer;
  const int64_t dp = grid_.dp().size();
  const int64_t local_batch = options_.layout.global_batch / dp;
  const int64_t micro_steps = local_batch / options_.layout.micro_batch;
  const int64_t B = options_.layout.micro_batch, full = options_.layout.seq_len;
  // With sequence parallelism this rank takes tokens [r·N, (r+1)·N) of every sample.
  const int64_t N = full / grid_.sp().size(), chunk_begin = grid_.coordinates().sp * N;
  // Sample i of this step is global sample position + i; DP rank d takes the
  // d-th contiguous block of local_batch, so any dp splits the same global batch.
  const int64_t first_sample = loader_->position() + grid_.coordinates().dp * local_batch;
  std::array<int64_t, 4> bytes_before{
      data_parallel_bytes(), grid_.tp().counters().total_bytes(),
      pipeline_bytes(), grid_.sp().counters().total_bytes()};
  if (zero_) {
    zero_->zero_grad();
  } else {
    model_->params().zero_grad();
  }
  std::vector<int32_t> sample_in(static_cast<size_t>(full)), sample_target(static_cast<size_t>(full));
  auto micro_batch = [&](int64_t micro, Tensor& inputs, Tensor& targets) {
    for (int64_t b = 0; b < B; ++b) {
      loader_->sample_at(first_sample + micro * B + b, sample_in.data(), sample_target.data());
      std::copy_n(sample_in.begin() + chunk_begin, N, inputs.data<int32_t>() + b * N);
      std::copy_n(sample_target.begin() + chunk_begin, N, targets.data<int32_t>() + b * N);
    }
  };
  // The stage's forward and backward passes in its schedule's order
  // (parallel/pipeline.h).
  PipelineStep step;
  step.schedule = options_.layout.schedule;
  step.micro_batches = micro_steps;
  step.batch = B;
  step.length = N;
  step.stream_length = tp_.stream_length(N);
  step.width = options_.model.width;
  step.dtype = options_.dtype;
  step.device = options_.device;
  const double loss =
      run_pipeline_step(step, *model_, grid_.pp(), grid_.pp_gradients(), micro_batch);
  loader_->set_position(loader_->position() + options_.layout.global_batch);
  if (options_.device == Device::CUDA) cuda::synchronize();
  const double compute_s = timer.elapsed_s();

  StepResult result;
  result.lr = options_.schedule.at(step_);
  // The step's tail (parallel/step_update.h): the code the plan runs.
  StepUpdate update;
  update.params = &model_->params();
  update.buckets = buckets_.get();
  update.zero = zero_.get();
  update.optimizer = zero_ ? nullptr : optimizer_.get();
  update.sum_model_parallel = [this](Tensor& t) { sum_over_model_parallel(t); };
  if (options_.model.tie_embeddings) update.embedding = grid_.embedding();
  result.grad_norm = update.update(result.lr, options_.grad_clip);
  ++step_;
  // An outer loop replaces the values at a round's end only.
  const bool replaced = outer_ && outer_->after_step(step_, result);
  update.refresh_compute(replaced);
  result.step = step_;
  if (options_.device == Device::CUDA) cuda::synchronize();
  result.compute_s = compute_s;
  result.optimizer_s = timer.elapsed_s() - compute_s;
  const std::vector<double> totals =
      world_sum({stage_.last() ? loss : 0.0, static_cast<double>(data_parallel_bytes() - bytes_before[0]),
                 static_cast<double>(grid_.tp().counters().total_bytes() - bytes_before[1]),
                 static_cast<double>(pipeline_bytes() - bytes_before[2]),
                 static_cast<double>(grid_.sp().counters().total_bytes() - bytes_before[3]),
                 std::max(result.outer_overlap, 0.0)});
  // The last stage's TP ranks of every DP replica hold the replica's loss, each
  // SP rank that of its chunk: average over replicas and chunks.
  result.loss = totals[0] / static_cast<double>(grid_.dp().size() * grid_.tp().size() *
                                                grid_.sp().size());
  for (int g = 0; g < 4; ++g)
    result.comm_bytes[static_cast<size_t>(g)] =
        static_cast<int64_t>(totals[static_cast<size_t>(g) + 1]);
  // Every rank ends an outer round on the same step: report the mean overlap.
  if (result.outer_overlap >= 0) result.outer_overlap = totals[5] / grid_.world().size();
  result.tokens_per_s =
      static_cast<double>(options_.layout.global_batch * full) / timer.elapsed_s();
  // Peak resident memory of the most loaded rank (the process's high-water
  // mark since it started: weights, optimizer state and activations).
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  int64_t peak = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &peak, 1, MPI_INT64_T, MPI_MAX,
                          static_cast<MpiCommunicator&>(grid_.world()).comm()));
  result.peak_rss_bytes = peak;
  return result;
}

EvalResult Trainer::evaluate() {
  LINPAR_CHECK(val_file_ != nullptr, "evaluate() without a validation file");
  const int64_t full = options_.layout.seq_len;
  std::vector<int64_t> starts = eval_window_starts(val_file_->size(), full, options_.eval_windows);
  if (starts.empty())
    user_error("validation file {} holds fewer than --seq-len + 1 = {} tokens", options_.val_path,
               full + 1);
  // SP ranks take their chunk of every window.
  const int64_t N = full / grid_.sp().size(), chunk_begin = grid_.coordinates().sp * N;
  // DP ranks split the windows (every d-th); the sum over the world / the
  // number of windows is the mean loss. Windows are evaluated one micro-batch
  // at a time in the same grouping on every layout.
  const int64_t dp = grid_.dp().size(), d = grid_.coordinates().dp;
  double total = 0;
  TransNormerLLM::Cache cache;
  std::vector<int64_t> mine;
  for (size_t i = 0; i < starts.size(); ++i) {
    if (static_cast<int64_t>(i) % dp == d) mine.push_back(starts[i]);
  }
  for (size_t first = 0; first < mine.size();
       first += static_cast<size_t>(options_.layout.micro_batch)) {
    const int64_t B =
        std::min<int64_t>(options_.layout.micro_batch, static_cast<int64_t>(mine.size() - first));
    Tensor inputs = Tensor::empty({B, N}, DType::I32), targets = Tensor::empty({B, N}, DType::I32);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = mine[first + static_cast<size_t>(b)];
      val_file_->copy(s + chunk_begin, N, inputs.data<int32_t>() + b * N);
      val_file_->copy(s + chunk_begin + 1, N, targets.data<int32_t>() + b * N);
    }
    // Forward only, through the pipeline's (virtual) stages in order: the
    // last gets the loss; under interleaving the last stage hands each chunk
    // on to the first one's next.
    const int pp = grid_.pp().size(), s = grid_.pp().rank();
    for (size_t c = 0; c < model_->chunks().size(); ++c) {
      const PipelineStage& at = model_->chunks()[c];
      auto boundary = [&] {
        return Tensor::empty({B, tp_.stream_length(N), options_.model.width}, options_.dtype,
                             options_.device);
      };
      Tensor x_in, x_out;
      if (!at.first()) {
        x_in = boundary();
        grid_.pp().recv(x_in, (s + pp - 1) % pp);
      }
      if (!at.last()) x_out = boundary();
      const double mean =
          model_->forward_stage(inputs, targets, x_in, x_out, cache, static_cast<int>(c));
      if (at.last()) total += mean * static_cast<double>(B);
      if (!at.last()) grid_.pp().send(x_out, (s + 1) % pp);
    }
  }
  // Each replica's sum is on its last stage, once per TP rank and split over
  // the SP ranks' chunks (equal lengths: their mean is the window's mean).
  total = world_sum({total})[0] / static_cast<double>(grid_.tp().size() * grid_.sp().size());
  EvalResult result;
  result.loss = total / static_cast<double>(starts.size());
  result.bits_per_byte = result.loss / std::numbers::ln2 * options_.val_tokens_per_byte;
  return result;
}

std::vector<Tensor> Trainer::parameter_values() {
  if (zero_) zero_->unshard();
  std::vector<Tensor> values;
  for (const Parameter& p : model_->params().all()) values.push_back(p.value.clone());
  if (zero_) zero_->reshard();
  return values;
}

std::string Trainer::save() {
  CheckpointMeta meta;
  meta.step = step_;
  meta.data_position = loader_->position();
  meta.extra = {{"seed", options_.seed},
                {"seq_len", options_.layout.seq_len},
                {"global_batch", options_.layout.global_batch},
                {"micro_batch", options_.layout.micro_batch},
                {"train_data", options_.train_path}};
  // Rank 0 begins; the others learn whether it could (an existing step_N is refused).
  std::string problem;
  if (grid_.is_first_rank()) {
    try {
      begin_checkpoint(options_.ckpt_dir, step_);
    } catch (const UserError& e) {
      problem = e.what();
    }
  }
  if (world_sum({problem.empty() ? 0.0 : 1.0})[0] > 0) {
    user_error("{}",
               problem.empty() ? "checkpoint: rank 0 could not begin the checkpoint" : problem);
  }
  const std::string temp = checkpoint_temp_dir(options_.ckpt_dir, step_);
  // DP replicas and SP ranks hold identical parameters: the ranks with dp and
  // sp coordinates 0 write their boxes. With ZeRO-1 the moments are first
  // gathered over the DP (×SP) group, so the files hold per-parameter boxes
  // under every layout.
  std::vector<Tensor> m, v;
  if (zero_) {
    zero_->gather_moments(m, v);
    zero_->unshard();  // ZeRO-3: the whole values, to write (reshard() below)
  } else {
    m = optimizer_->first_moments();
    v = optimizer_->second_moments();
  }
  // With an outer loop (CO2) the replicas differ between rounds: every
  // replica writes its own parameters and optimizer state too.
  const auto writer = [this](const GridCoordinates& c) { return c.sp == 0 && (c.dp == 0 || outer_); };
  const bool writes = writer(grid_.coordinates());
  if (outer_) outer_->complete_in_flight();
  if (writes) {
    Hdf5File file =
        Hdf5File::create((std::filesystem::path(temp) / rank_file_name(grid_.rank())).string());
    if (grid_.coordinates().dp == 0) {
      write_parameters(file, model_->params());
      write_optimizer_state(file, model_->params(), m, v);
    }
    if (outer_) {
      const std::string prefix = replica_prefix();
      for (const Parameter& p : model_->params().all())
        file.write_shard(prefix + "params/" + p.name, p.value_box(), p.global_shape, p.offset);
      for (size_t i = 0; i < m.size(); ++i) {
        const Parameter& p = model_->params().all()[i];
        file.write_shard(prefix + "optimizer/m/" + p.name, m[i].reshape(p.box_shape), p.global_shape, p.offset);
        file.write_shard(prefix + "optimizer/v/" + p.name, v[i].reshape(p.box_shape), p.global_shape, p.offset);
      }
      outer_->save(file, grid_.coordinates().dp == 0, prefix);
    }
  }
  if (zero_) zero_->reshard();
  const double writers = world_sum({writes ? 1.0 : 0.0})[0];  // also the barrier before the commit
  std::string dir =
      (std::filesystem::path(options_.ckpt_dir) / fmt::format("step_{:08d}", step_)).string();
  if (grid_.is_first_rank()) {
    nlohmann::json json = checkpoint_meta(*model_, meta, optimizer().steps_taken());
    const auto& l = grid_.layout();
    json["layout"] = {
        {"dp", l.dp}, {"tp", l.tp}, {"pp", l.pp}, {"sp", l.sp}, {"zero", options_.layout.zero}};
    nlohmann::json files = nlohmann::json::array();
    for (int r = 0; r < grid_.world().size(); ++r) {
      const GridCoordinates c = grid_coordinates(l, r);
      if (writer(c)) files.push_back(rank_file_name(r));
    }
    LINPAR_CHECK(static_cast<double>(files.size()) == writers,
                 "checkpoint: {} files listed, {} written", files.size(), writers);
    json["files"] = files;
    if (outer_) json["co2"] = outer_->describe();
    dir = commit_checkpoint(options_.ckpt_dir, step_, json);
  }
  world_sum({0.0});  // nobody continues (or exits) before the commit
  return dir;
}

// Any layout loads any other's checkpoint: every parameter, and each of its
// AdamW moments, is read as the box this rank holds.
void Trainer::load(const std::string& dir, bool with_optimizer) {
  CheckpointReader reader(dir);
  check_same_architecture(config_from_json(reader.meta().at("model")), model_->config(),
                          "checkpoint " + dir);
  // A CO2 checkpoint resumed with CO2 restores every replica's own state; it
  // needs the same number of replicas.
  const bool replicas = outer_ && with_optimizer && reader.meta().contains("co2");
  if (replicas) {
    const int written = reader.meta().at("layout").at("dp").get<int>();
    if (written != grid_.dp().size()) {
      user_error("checkpoint {}: written with CO2 under --dp {}; resume it under --dp {} (each "
                 "replica's state is its own)",
                 dir, written, written);
    }
  }
  const std::string prefix = replicas ? replica_prefix() : "";
  std::vector<Tensor> m, v;
  if (zero_) zero_->unshard();  // ZeRO-3: whole values to read into, sharded again below
  for (Parameter& p : model_->params().all()) {
    read_parameter_box(reader, prefix + "params/" + p.name, p, p.value);
    if (with_optimizer) {
      m.push_back(Tensor::empty(p.value.shape(), p.value.dtype()));
      v.push_back(Tensor::empty(p.value.shape(), p.value.dtype()));
      read_parameter_box(reader, prefix + "optimizer/m/" + p.name, p, m.back());
      read_parameter_box(reader, prefix + "optimizer/v/" + p.name, p, v.back());
    }
  }
  if (zero_) zero_->reshard();
  model_->params().refresh_compute();
  if (outer_) {
    if (replicas) {
      outer_->load(reader, reader.meta().at("co2"), prefix);
    } else {
      outer_->reset_from_parameters();
    }
  }
  if (!with_optimizer) return;
  if (zero_) {
    zero_->scatter_moments(m, v);
  } else {
    for (size_t i = 0; i < m.size(); ++i) {
      optimizer_->first_moments()[i].copy_from(m[i].reshape({-1}));
      optimizer_->second_moments()[i].copy_from(v[i].reshape({-1}));
    }
  }
  optimizer().set_steps_taken(reader.meta().at("optimizer").at("steps_taken").get<int64_t>());
  const CheckpointMeta state = reader.run_state();
  step_ = state.step;
  loader_->set_position(state.data_position);
}

void Trainer::write_metrics(const StepResult& r, const std::optional<EvalResult>& eval) {
  if (options_.metrics_path.empty() || !grid_.is_first_rank()) return;
  nlohmann::json line = {{"step", r.step},
                         {"loss", r.loss},
                         {"lr", r.lr},
                         {"grad_norm", r.grad_norm},
                         {"tokens_per_s", r.tokens_per_s},
                         {"compute_s", r.compute_s},
                         {"optimizer_s", r.optimizer_s},
                         {"peak_rss_bytes", r.peak_rss_bytes},
                         // Bytes sent this step, summed over ranks, per group.
                         {"comm_bytes",
                          {{"dp", r.comm_bytes[0]},
                           {"tp", r.comm_bytes[1]},
                           {"pp", r.comm_bytes[2]},
                           {"sp", r.comm_bytes[3]}}}};
  if (options_.device == Device::CUDA) {
    // The caching allocator's high-water mark (the memory model's comparison).
    line["gpu_peak_in_use_bytes"] = cuda::memory_stats().peak_in_use_bytes;
  }
  if (r.outer_overlap >= 0) {
    line["co2_overlap"] = r.outer_overlap;
    line["outer_update_norm"] = r.outer_update_norm;
  }
  if (eval) {
    line["val_loss"] = eval->loss;
    line["val_bpb"] = eval->bits_per_byte;
  }
  std::ofstream out(options_.metrics_path, std::ios::app);
  out << line.dump() << "\n";
  if (!out) user_error("--metrics {}: cannot write", options_.metrics_path);
}

void Trainer::run() {
  const bool first = grid_.is_first_rank();
  if (options_.resume) {
    const std::string dir = latest_checkpoint(options_.ckpt_dir);
    if (dir.empty()) user_error("--resume: no checkpoint under --ckpt-dir {}", options_.ckpt_dir);
    load(dir, /*with_optimizer=*/true);
    if (first) log::info("resumed from {} at step {}", dir, step_);
  } else {
    if (!options_.init_from.empty()) {
      // Weights only: optimizer state and step start fresh (fine-tuning from
      // released weights converted by `linpar convert`).
      const std::string dir = resolve_checkpoint_dir(options_.init_from);
      load(dir, /*with_optimizer=*/false);
      if (first) log::info("initialised weights from {}", dir);
    }
    if (first && !options_.metrics_path.empty()) {
      std::ofstream truncate(options_.metrics_path, std::ios::trunc);
      if (!truncate) user_error("--metrics {}: cannot write", options_.metrics_path);
    }
  }
  if (step_ >= options_.steps) {
    if (first) log::info("nothing to do: step {} >= --steps {}", step_, options_.steps);
    return;
  }
  ProgressBar::Mode mode = ProgressBar::mode_for_stdout();
  if (options_.progress == TrainOptions::Progress::Bar) mode = ProgressBar::Mode::Bar;
  if (options_.progress == TrainOptions::Progress::Lines) mode = ProgressBar::Mode::Lines;
  if (options_.progress == TrainOptions::Progress::Quiet || !first) mode = ProgressBar::Mode::Quiet;
  const int64_t last_step = options_.exit_after > 0
                                ? std::min(options_.steps, step_ + options_.exit_after)
                                : options_.steps;
  ProgressBar bar(step_, options_.steps, mode);
  if (val_file_ && step_ == 0) {
    // The untrained model's validation score: the baseline the run improves on.
    EvalResult eval = evaluate();
    bar.message(
        fmt::format("step 0: val_loss {:.4f} val_bpb {:.4f}", eval.loss, eval.bits_per_byte));
    if (first && !options_.metrics_path.empty()) {
      std::ofstream out(options_.metrics_path, std::ios::app);
      out << nlohmann::json{{"step", 0}, {"val_loss", eval.loss}, {"val_bpb", eval.bits_per_byte}}
                 .dump()
          << "\n";
    }
  }
  // LINPAR_OP_TIMES=1: the last step runs with every op timed (CUDA events on
  // the GPU) and each rank prints where that step's time went, to stderr.
  const bool time_ops = std::getenv("LINPAR_OP_TIMES") != nullptr;
  while (step_ < last_step) {
    const bool timed = time_ops && step_ + 1 == last_step;
    if (timed) {
      reset_op_times();
      enable_op_timing(true);
    }
    StepResult r = train_step();
    if (timed) {
      enable_op_timing(false);
      print_op_times(fmt::format("rank {} ", grid_.rank()), stderr);
    }
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
    if (checkpoint_now) {
      const std::string dir = save();
      bar.message("checkpoint " + dir);
    }
  }
  bar.finish();
}

}  // namespace linpar
