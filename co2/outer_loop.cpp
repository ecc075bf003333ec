#include "co2/outer_loop.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/op_stats.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "parallel/communicator.h"
#include "parallel/hybrid_communicator.h"

namespace linpar::co2 {

double co2_auto_momentum(int dp) {
  if (dp <= 16) return 0.0;
  if (dp <= 32) return 0.2;
  if (dp <= 64) return 0.5;
  return 0.6;
}

void validate(const Co2Options& o) {
  if (o.tau < 0) user_error("--co2-tau {}: must be >= 0", o.tau);
  if (!(o.outer_lr > 0)) user_error("--co2-outer-lr {}: must be positive", o.outer_lr);
  if (o.outer_momentum >= 1) user_error("--co2-outer-momentum {}: must be below 1", o.outer_momentum);
  if (!(o.gap_penalty > 0)) user_error("--co2-gap-penalty {}: must be positive", o.gap_penalty);
  if (o.clip < 0) user_error("--co2-clip {}: must be >= 0 (0: off)", o.clip);
  if (o.emulated_gbps < 0) user_error("--emulate-dp-gbps {}: must be >= 0", o.emulated_gbps);
}

namespace {
int64_t total_elements(const ParameterSet& params) {
  int64_t n = 0;
  for (const Parameter& p : params.all()) n += p.value.numel();
  return n;
}
}  // namespace

Co2OuterLoop::Co2OuterLoop(const Co2Options& options, ParameterSet& params, MPI_Comm dp,
                           std::string shard_tag)
    : options_(options),
      params_(params),
      all_reduce_(dp, options.emulated_gbps),
      shard_tag_(std::move(shard_tag)) {
  validate(options_);
  LINPAR_CHECK(options_.tau > 0, "CO2 outer loop with tau {}", options_.tau);
  beta_ = options_.outer_momentum >= 0 ? options_.outer_momentum : co2_auto_momentum(all_reduce_.size());
  const DType dtype = params.all().front().value.dtype();
  const int64_t n = all_reduce_.size(), total = total_elements(params);
  length_ = sharded() ? (total + n - 1) / n * n : total;
  round_start_ = Tensor::zeros({length_}, dtype);  // the padding stays zero
  flatten(round_start_);  // x_{0,0} = g_0: identical on every rank (global-index initialisation)
  if (sharded()) {
    MPI_CHECK(MPI_Comm_dup(dp, &gather_comm_));
    const int64_t shard = length_ / n;
    anchor_ = round_start_.slice0(all_reduce_.rank() * shard, (all_reduce_.rank() + 1) * shard).clone();
  } else {
    anchor_ = round_start_.clone();
  }
  momentum_ = Tensor::zeros(anchor_.shape(), dtype);
}

Co2OuterLoop::~Co2OuterLoop() {
  if (gather_comm_ != MPI_COMM_NULL) MPI_Comm_free(&gather_comm_);
}

Tensor Co2OuterLoop::global_point() {
  if (!sharded()) return anchor_.clone();
  Tensor whole = Tensor::empty({length_}, anchor_.dtype());
  const MPI_Datatype type = anchor_.dtype() == DType::F32 ? MPI_FLOAT : MPI_DOUBLE;
  MPI_CHECK(MPI_Allgather(anchor_.raw_data(), static_cast<int>(anchor_.numel()), type,
                          whole.raw_data(), static_cast<int>(anchor_.numel()), type, gather_comm_));
  gathered_bytes_ += wire_bytes(CollectiveKind::AllGather, all_reduce_.size(),
                                static_cast<int64_t>(anchor_.nbytes()));
  return whole;
}

// The outer state lives in host memory whatever the parameters' device: on
// GPUs a round costs one device-to-host and one host-to-device copy of the
// f32 weights, every τ steps, and the outer all-reduce runs over MPI on its
// own thread without touching the GPU the inner steps keep busy.
void Co2OuterLoop::flatten(Tensor& flat) const {
  int64_t offset = 0;
  for (const Parameter& p : params_.all()) {
    flat.slice0(offset, offset + p.value.numel()).copy_from(p.value.reshape({-1}));
    offset += p.value.numel();
  }
}

void Co2OuterLoop::unflatten(const Tensor& flat) {
  int64_t offset = 0;
  for (Parameter& p : params_.all()) {
    Tensor value = p.value.reshape({-1});
    value.copy_from(flat.slice0(offset, offset + value.numel()));
    offset += value.numel();
  }
}

double Co2OuterLoop::outer_step(const Tensor& average) {
  // m = β·m + Δ̄/Λ
  scale(beta_, momentum_);
  axpy(1.0 / options_.gap_penalty, average, momentum_);
  if (options_.clip > 0) {
    LINPAR_DISPATCH_FLOAT(momentum_.dtype(), "co2 clip", [&]<typename T>() {
      T* m = momentum_.data<T>();
      const T phi = static_cast<T>(options_.clip);
      for (int64_t i = 0; i < momentum_.numel(); ++i) m[i] = std::clamp(m[i], -phi, phi);
    });
  }
  // x_{t+1,0} = x_{t,0} − α·m
  axpy(-options_.outer_lr, momentum_, anchor_);
  double squares = sum_squares(momentum_);
  if (sharded()) {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &squares, 1, MPI_DOUBLE, MPI_SUM, gather_comm_));
    gathered_bytes_ += wire_bytes(CollectiveKind::AllReduce, all_reduce_.size(), 8);
  }
  return options_.outer_lr * std::sqrt(squares);
}

// The outer reduction's start, one op of the step's tail (Pass::Outer;
// parallel/step_plan.h states it): its thread and its duplicated MPI group
// count no collective in the recorder, so it is recorded here as the
// communicators count theirs (an all-reduce's buffer, a reduce-scatter's
// output block).
void Co2OuterLoop::start_outer_reduction(Tensor delta) {
  const OpScope op("co2.outer_all_reduce");
  const int64_t bytes = static_cast<int64_t>(delta.nbytes());
  if (sharded()) {
    record_collective(CollectiveKind::ReduceScatter, "dp", bytes / all_reduce_.size());
  } else {
    record_collective(CollectiveKind::AllReduce, "dp", bytes);
  }
  all_reduce_.start(std::move(delta), sharded());
}

bool Co2OuterLoop::after_step(int64_t step, StepResult& result) {
  if (step % options_.tau != 0) return false;
  const OpPlace place(kStepLayer, Pass::Outer);
  // Δ_t = x_{t,0} − x_{t,τ} (this rank's round), in a fresh buffer the
  // all-reduce will own.
  Tensor delta = Tensor::zeros(round_start_.shape(), round_start_.dtype());
  flatten(delta);
  scale(-1.0, delta);
  axpy(1.0, round_start_, delta);
  double blocked = 0, duration = 0;
  if (options_.sync) {
    start_outer_reduction(std::move(delta));
    const Tensor average = all_reduce_.wait(&blocked, &duration);
    result.outer_update_norm = outer_step(average);
    result.outer_overlap = 0;  // nothing to hide behind: the step waits for it
    round_start_ = global_point();  // x_{t+1,0} = g_{t+1}
  } else {
    Tensor previous;
    if (all_reduce_.in_flight()) {
      previous = all_reduce_.wait(&blocked, &duration);
    } else if (pending_.defined()) {  // completed when a checkpoint was written
      previous = std::move(pending_);
      pending_ = Tensor();
      blocked = pending_blocked_s_;
      duration = pending_duration_s_;
    }
    if (previous.defined()) {
      result.outer_update_norm = outer_step(previous);
      result.outer_overlap = duration > 0 ? std::clamp(1.0 - blocked / duration, 0.0, 1.0) : 1.0;
    } else {
      result.outer_update_norm = 0;  // round 0: no average formed yet: g_1 = g_0
      result.outer_overlap = 1;
    }
    // x_{t+1,0} = g_{t+1} − Δ_t: the global point plus this rank's own round,
    // whose average is applied one round later (it replaces it then).
    round_start_ = global_point();
    axpy(-1.0, delta, round_start_);
    start_outer_reduction(std::move(delta));
  }
  unflatten(round_start_);
  ++rounds_;
  return true;
}

void Co2OuterLoop::complete_in_flight() {
  if (all_reduce_.in_flight()) pending_ = all_reduce_.wait(&pending_blocked_s_, &pending_duration_s_);
}

Tensor Co2OuterLoop::box_of(const Tensor& flat, size_t i) const {
  int64_t offset = 0;
  for (size_t j = 0; j < i; ++j) offset += params_.all()[j].value.numel();
  const Parameter& p = params_.all()[i];
  return flat.slice0(offset, offset + p.value.numel()).reshape(p.box_shape);
}

void Co2OuterLoop::save(Hdf5File& file, bool shared, const std::string& replica_prefix) {
  LINPAR_CHECK(!all_reduce_.in_flight(), "CO2 save with an all-reduce in flight");
  if (sharded()) {
    // Every replica holds its own shard of the flat outer state of this model
    // shard: one global flat dataset per model shard, a box per replica.
    file.write_shard(replica_prefix + "round_start_flat", round_start_, {length_}, {0});
    const int64_t shard = anchor_.numel();
    const Shape global{length_}, offset{all_reduce_.rank() * shard};
    const std::string base = "co2/sharded/" + shard_tag_ + "/";
    file.write_shard(base + "anchor", anchor_, global, offset);
    file.write_shard(base + "momentum", momentum_, global, offset);
    if (pending_.defined()) file.write_shard(base + "pending", pending_, global, offset);
    return;
  }
  for (size_t i = 0; i < params_.all().size(); ++i) {
    const Parameter& p = params_.all()[i];
    file.write_shard(replica_prefix + "round_start/" + p.name, box_of(round_start_, i), p.global_shape,
                     p.offset);
    if (!shared) continue;
    file.write_shard("co2/anchor/" + p.name, box_of(anchor_, i), p.global_shape, p.offset);
    file.write_shard("co2/momentum/" + p.name, box_of(momentum_, i), p.global_shape, p.offset);
    if (pending_.defined())
      file.write_shard("co2/pending/" + p.name, box_of(pending_, i), p.global_shape, p.offset);
  }
}

nlohmann::json Co2OuterLoop::describe() const {
  return {{"tau", options_.tau},           {"sync", options_.sync},
          {"outer_lr", options_.outer_lr}, {"outer_momentum", beta_},
          {"gap_penalty", options_.gap_penalty}, {"clip", options_.clip},
          {"rounds_done", rounds_},        {"pending", pending_.defined()},
          {"shard_outer", sharded()}};
}

void Co2OuterLoop::load(const CheckpointReader& reader, const nlohmann::json& meta,
                        const std::string& replica_prefix) {
  if (meta.at("tau").get<int64_t>() != options_.tau || meta.at("sync").get<bool>() != options_.sync) {
    user_error("checkpoint: written with --co2-tau {}{}; resume with the same CO2 round",
               meta.at("tau").get<int64_t>(), meta.at("sync").get<bool>() ? " --co2-sync" : "");
  }
  if (meta.value("shard_outer", false) != sharded()) {
    user_error("checkpoint: written {} --co2-shard-outer; resume the same way",
               sharded() ? "without" : "with");
  }
  const bool pending = meta.at("pending").get<bool>();
  if (pending) pending_ = Tensor::empty(anchor_.shape(), anchor_.dtype());
  rounds_ = meta.at("rounds_done").get<int64_t>();
  pending_blocked_s_ = pending_duration_s_ = 0;
  if (sharded()) {
    const int64_t shard = anchor_.numel();
    const Shape global{length_}, begin{all_reduce_.rank() * shard}, count{shard};
    const std::string base = "co2/sharded/" + shard_tag_ + "/";
    round_start_.copy_from(reader.read(replica_prefix + "round_start_flat", global, {0}, global, round_start_.dtype()));
    anchor_.copy_from(reader.read(base + "anchor", global, begin, count, anchor_.dtype()));
    momentum_.copy_from(reader.read(base + "momentum", global, begin, count, momentum_.dtype()));
    if (pending) pending_.copy_from(reader.read(base + "pending", global, begin, count, pending_.dtype()));
    return;
  }
  for (size_t i = 0; i < params_.all().size(); ++i) {
    const Parameter& p = params_.all()[i];
    Tensor target = box_of(round_start_, i);
    read_parameter_box(reader, replica_prefix + "round_start/" + p.name, p, target);
    target = box_of(anchor_, i);
    read_parameter_box(reader, "co2/anchor/" + p.name, p, target);
    target = box_of(momentum_, i);
    read_parameter_box(reader, "co2/momentum/" + p.name, p, target);
    if (pending) {
      target = box_of(pending_, i);
      read_parameter_box(reader, "co2/pending/" + p.name, p, target);
    }
  }
}

void Co2OuterLoop::reset_from_parameters() {
  LINPAR_CHECK(!all_reduce_.in_flight(), "CO2 reset with an all-reduce in flight");
  round_start_.fill_zero();
  flatten(round_start_);
  const int64_t shard = anchor_.numel();
  anchor_.copy_from(sharded() ? round_start_.slice0(all_reduce_.rank() * shard, (all_reduce_.rank() + 1) * shard)
                              : round_start_);
  momentum_.fill_zero();
  pending_ = Tensor();
  rounds_ = 0;
}

OuterLoopFactory make_outer_loop(const Co2Options& options) {
  return [options](ParameterSet& params, ProcessGrid& grid) -> std::unique_ptr<OuterLoop> {
    const GridCoordinates& c = grid.coordinates();
    return std::make_unique<Co2OuterLoop>(options, params,
                                          mpi_comm_of(grid.dp()),
                                          fmt::format("tp{}_pp{}", c.tp, c.pp));
  };
}

}  // namespace linpar::co2
