#include "model/pipeline_schedule.h"

#include <algorithm>

#include "core/error.h"

namespace linpar {

PipelineSchedule pipeline_schedule_from_name(const std::string& name) {
  if (name == "gpipe") return PipelineSchedule::GPipe;
  if (name == "1f1b") return PipelineSchedule::OneFOneB;
  user_error("--pp-schedule {}: expected gpipe or 1f1b", name);
}

const char* pipeline_schedule_name(PipelineSchedule schedule) {
  return schedule == PipelineSchedule::GPipe ? "gpipe" : "1f1b";
}

std::vector<PipelineAction> pipeline_actions(PipelineSchedule schedule, int stage, int stages,
                                             int64_t micro_batches) {
  std::vector<PipelineAction> actions;
  if (schedule == PipelineSchedule::GPipe) {
    for (int64_t i = 0; i < micro_batches; ++i) actions.push_back({false, i});
    for (int64_t i = 0; i < micro_batches; ++i) actions.push_back({true, i});
    return actions;
  }
  const int64_t warmup = std::min<int64_t>(stages - stage - 1, micro_batches);
  for (int64_t i = 0; i < warmup; ++i) actions.push_back({false, i});
  for (int64_t i = 0; i < micro_batches - warmup; ++i) {
    actions.push_back({false, warmup + i});
    actions.push_back({true, i});
  }
  for (int64_t i = micro_batches - warmup; i < micro_batches; ++i) actions.push_back({true, i});
  return actions;
}

PipelineAction interleaved_pipeline_action(int stage, int stages, int chunks, int64_t micro_batches,
                                           int64_t k) {
  const int64_t S = stages, v = chunks, total = micro_batches * chunks;
  const int64_t warmup = micro_batches == S ? total : std::min<int64_t>(2 * (S - stage - 1) + (v - 1) * S, total);
  // Which forward or backward pass this is, then its micro-batch and chunk.
  const PipelineAction step = one_f_one_b_step(k, warmup, total);
  const int64_t n = step.micro_batch, in_group = n % (S * v), chunk = in_group / S;
  return {step.backward, n / (S * v) * S + in_group % S, static_cast<int>(step.backward ? v - 1 - chunk : chunk)};
}

std::vector<PipelineAction> interleaved_pipeline_actions(int stage, int stages, int chunks, int64_t micro_batches) {
  std::vector<PipelineAction> actions;
  for (int64_t k = 0; k < 2 * micro_batches * chunks; ++k) {
    actions.push_back(interleaved_pipeline_action(stage, stages, chunks, micro_batches, k));
  }
  return actions;
}

}  // namespace linpar
