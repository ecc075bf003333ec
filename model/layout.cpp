#include "model/layout.h"

#include "core/error.h"
#include "model/tensor_parallel.h"
#include "model/transnormer.h"

namespace linpar {

void validate_layout(const Layout& l) {
  for (auto [option, degree] :
       {std::pair{"--dp", l.dp}, {"--tp", l.tp}, {"--pp", l.pp}, {"--sp", l.sp}}) {
    if (degree <= 0) user_error("{} {}: must be positive", option, degree);
  }
  for (auto [option, size] : {std::pair{"--seq-len", l.seq_len},
                              {"--micro-batch", l.micro_batch},
                              {"--global-batch", l.global_batch}}) {
    if (size <= 0) user_error("{} {}: must be positive", option, size);
  }
  if (l.seq_len % l.sp != 0) {
    user_error("--seq-len {} must be divisible by --sp {} (each SP rank holds an equal chunk)",
               l.seq_len, l.sp);
  }
  if (l.tp_sp && l.tp < 2) user_error("--tp-sp needs --tp > 1 (got --tp {})", l.tp);
  if (l.tp_sp && l.seq_len % (static_cast<int64_t>(l.sp) * l.tp) != 0) {
    user_error(
        "--tp-sp: --seq-len {} must be divisible by --sp {} × --tp {} (the residual stream is "
        "split "
        "over the TP ranks)",
        l.seq_len, l.sp, l.tp);
  }
  // A product past 2^63 (a micro-batch near 2^62) is no multiple of anything.
  int64_t per_step = 0;
  const bool overflows =
      __builtin_mul_overflow(static_cast<int64_t>(l.dp), l.micro_batch, &per_step);
  if (overflows || l.global_batch % per_step != 0) {
    if (l.dp == 1) {
      user_error("--global-batch {} must be a multiple of --micro-batch {}", l.global_batch,
                 l.micro_batch);
    }
    user_error("--global-batch {} must be a multiple of --dp {} × --micro-batch {} = {}",
               l.global_batch, l.dp, l.micro_batch, per_step);
  }
  if (l.zero < 0 || l.zero > 3) user_error("--zero {}: expected 0, 1, 2 or 3", l.zero);
  if (l.co2_tau < 0) user_error("--co2-tau {}: must be 0 (off) or positive", l.co2_tau);
  if (l.co2_tau > 0 && l.zero != 0) {
    user_error(
        "--co2-tau {} with --zero {}: CO2 keeps each DP rank's own optimizer state (use --zero 0)",
        l.co2_tau, l.zero);
  }
  if (l.pp_chunks < 1) user_error("--pp-chunks {}: must be positive", l.pp_chunks);
  if (l.pp_chunks > 1) {
    if (l.pp == 1)
      user_error("--pp-chunks {}: interleaving needs a pipeline (pp > 1)", l.pp_chunks);
    if (l.schedule != PipelineSchedule::OneFOneB) {
      user_error("--pp-chunks {}: interleaving is of the 1f1b schedule", l.pp_chunks);
    }
    if (l.micro_batches() % l.pp != 0) {
      user_error(
          "--pp-chunks {}: the interleaved schedule needs the {} micro-batches per step to be a "
          "multiple of pp {}",
          l.pp_chunks, l.micro_batches(), l.pp);
    }
  }
}

void validate_layout(const ModelConfig& model, const Layout& l) {
  validate_layout(l);
  validate_tensor_parallel(model, l.tp);
  if (l.sp > 1 && l.sp_kind == SequenceParallelKind::Ulysses &&
      (model.n_heads / l.tp) % l.sp != 0) {
    user_error("--sp-kind ulysses: the {} heads per TP rank must be divisible by --sp {}",
               model.n_heads / l.tp, l.sp);
  }
  if (l.pp_chunks > 1 && l.virtual_stages() > model.n_layers) {
    user_error("--pp {} × --pp-chunks {} = {} model chunks: the model has {} layers", l.pp,
               l.pp_chunks, l.virtual_stages(), model.n_layers);
  }
  const int stages = l.virtual_stages();
  if (stages > 1) pipeline_stage(model, stages - 1, stages);  // every stage (chunk) gets a layer
}

}  // namespace linpar
