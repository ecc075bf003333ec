#include "model/pipeline_schedule.h"

#include <algorithm>

#include "core/error.h"

namespace linpar {

PipelineSchedule pipeline_schedule_from_name(const std::string& name) {
  if (name == "gpipe") return PipelineSchedule::GPipe;
  if (name == "1f1b") return PipelineSchedule::OneFOneB;
  user_error("--pp-schedule {}: expected gpipe or 1f1b", name);
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

}  // namespace linpar
