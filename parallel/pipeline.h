// The pipeline executor: one step's forward and backward passes of a
// pipeline stage, in its schedule's order (model/pipeline_schedule.h: GPipe,
// 1F1B, or interleaved 1F1B over the model's chunks), with the activations
// sent to the next (virtual) stage and their gradients back by send/recv
// over the PP group (sends asynchronous, so neighbours never wait on each
// other's sends; under interleaving the last stage sends to the first, and
// gradients go over a group of their own). The simulator schedules the
// same actions (sim/step.cpp, schedule_step).
#pragma once

#include <cstdint>
#include <functional>

#include "core/communicator.h"
#include "model/pipeline_schedule.h"
#include "model/transnormer.h"

namespace linpar {

struct PipelineStep {
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  int64_t micro_batches = 1;
  // One micro-batch's tokens and targets [batch, length] i32 on this rank.
  int64_t batch = 1, length = 1;
  // The activations passed between stages: [batch, stream_length, width].
  int64_t stream_length = 1, width = 1;
  DType dtype = DType::F32;
  Device device = Device::CPU;
};

// Fills micro-batch `micro`'s tokens and targets.
using MicroBatchLoader = std::function<void(int64_t micro, Tensor& tokens, Tensor& targets)>;

// Runs the stage's passes of one step on `model` (this stage's layers, in
// one chunk or several: TransNormerLLM::chunks) and returns the mean loss
// over the micro-batches (0 on every stage but the last). The model's
// parameter hooks (DDP's buckets, ZeRO) are told which backward is a
// chunk's last micro-batch. `pp_gradients`: the gradients' group (ProcessGrid::pp_gradients; pp
// itself without interleaving).
double run_pipeline_step(const PipelineStep& step, TransNormerLLM& model, Communicator& pp,
                         Communicator& pp_gradients, const MicroBatchLoader& load);

}  // namespace linpar
