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
const char* pipeline_schedule_name(PipelineSchedule schedule);          // "gpipe", "1f1b"

struct PipelineAction {
  bool backward = false;
  int64_t micro_batch = 0;
  int chunk = 0;  // the model chunk (interleaved schedule); 0 otherwise
};

// GPipe: every forward, then every backward (all m micro-batches' activations
// live at once). 1F1B: stage s runs min(S − s − 1, m) warm-up forwards, then
// alternates one forward and one backward, then drains the backwards, so at
// most S − s micro-batches are in flight on stage s.
std::vector<PipelineAction> pipeline_actions(PipelineSchedule schedule, int stage, int stages,
                                             int64_t micro_batches);
// The k-th step (0 <= k < 2·n) of any one-forward-one-backward order of n
// passes with `warmup` warm-up forwards: a forward or backward (the
// micro_batch field) is the how-manieth pass of its kind.
inline PipelineAction one_f_one_b_step(int64_t k, int64_t warmup, int64_t n) {
  if (k < warmup) return {false, k};              // warm-up forwards
  if (k >= 2 * n - warmup) return {true, k - n};  // draining backwards
  const int64_t i = (k - warmup) / 2;             // steady state: forward, backward
  return (k - warmup) % 2 == 0 ? PipelineAction{false, warmup + i} : PipelineAction{true, i};
}

// The k-th of them (0 <= k < 2 · micro_batches), without building the list
// (the simulator's layout search walks millions of actions: inline).
inline PipelineAction pipeline_action(PipelineSchedule schedule, int stage, int stages, int64_t micro_batches,
                                      int64_t k) {
  const int64_t m = micro_batches;
  if (schedule == PipelineSchedule::GPipe) return k < m ? PipelineAction{false, k} : PipelineAction{true, k - m};
  return one_f_one_b_step(k, stages - stage - 1 < m ? stages - stage - 1 : m, m);
}

// Interleaved 1F1B (Narayanan et al. 2021, §2.2; Megatron-LM's
// forward_backward_pipelining_with_interleaving; the trainer's
// parallel/pipeline.cpp and the simulator run it): each of the S stages holds v model chunks, stage
// s's chunk c being virtual stage c·S + s of S·v, so a micro-batch passes the stages v times.
// Micro-batches go in groups of S: forward k (of m·v) runs micro-batch (k / (S·v))·S + k % S on
// chunk (k / S) % v, backward k the same micro-batch on chunk v − 1 − (k / S) % v. Stage s runs
// min(2·(S − s − 1) + (v − 1)·S, m·v) warm-up forwards (all m·v when m = S),
// then alternates one forward and one backward, then drains the backwards.
// The bubble is v times smaller than 1F1B's; m must be a multiple of S.
// The k-th action, 0 <= k < 2·m·v:
PipelineAction interleaved_pipeline_action(int stage, int stages, int chunks, int64_t micro_batches, int64_t k);
// All of them in order.
std::vector<PipelineAction> interleaved_pipeline_actions(int stage, int stages, int chunks, int64_t micro_batches);

}  // namespace linpar
