// Pipeline schedules (GPipe, Huang et al. 2019; 1F1B, PipeDream-Flush as in
// Megatron-LM): the order in which one stage runs the forward and backward
// passes of a step's micro-batches. Schedules are plain functions over the
// micro-batch count, readable top to bottom; the trainer executes the list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace linpar {

enum class PipelineSchedule { GPipe, OneFOneB };
PipelineSchedule pipeline_schedule_from_name(const std::string& name);  // UserError on unknown names

struct PipelineAction {
  bool backward = false;
  int64_t micro_batch = 0;
};

// GPipe: every forward, then every backward (all m micro-batches' activations
// live at once). 1F1B: stage s runs min(S − s − 1, m) warm-up forwards, then
// alternates one forward and one backward, then drains the backwards, so at
// most S − s micro-batches are in flight on stage s.
std::vector<PipelineAction> pipeline_actions(PipelineSchedule schedule, int stage, int stages,
                                             int64_t micro_batches);
// The k-th of them (0 <= k < 2 · micro_batches), without building the list
// (the simulator's layout search walks millions of actions: inline).
inline PipelineAction pipeline_action(PipelineSchedule schedule, int stage, int stages, int64_t micro_batches,
                                      int64_t k) {
  const int64_t m = micro_batches;
  if (schedule == PipelineSchedule::GPipe) return k < m ? PipelineAction{false, k} : PipelineAction{true, k - m};
  const int64_t warmup = stages - stage - 1 < m ? stages - stage - 1 : m;
  if (k < warmup) return {false, k};              // warm-up forwards
  if (k >= 2 * m - warmup) return {true, k - m};  // draining backwards
  const int64_t i = (k - warmup) / 2;             // steady state: forward, backward
  return (k - warmup) % 2 == 0 ? PipelineAction{false, warmup + i} : PipelineAction{true, i};
}

}  // namespace linpar
