#include "parallel/pipeline.h"

#include <memory>
#include <vector>

namespace linpar {

double run_pipeline_step(const PipelineStep& step, TransNormerLLM& model, Communicator& pp,
                         Communicator& pp_gradients, const MicroBatchLoader& load) {
  const PipelineStage& stage = model.stage();
  const std::vector<PipelineStage>& chunks = model.chunks();
  const int v = static_cast<int>(chunks.size()), S = stage.size;
  // Virtual stage c·S + s sends to c·S + s + 1: the next stage, or from the
  // last stage to the first one's next chunk.
  const int prev = (stage.rank + S - 1) % S, next = (stage.rank + 1) % S;
  const int64_t B = step.batch, N = step.length;
  auto boundary = [&] {
    return Tensor::empty({B, step.stream_length, step.width}, step.dtype, step.device);
  };
  // One cache per micro-batch and chunk, from its forward to its backward.
  std::vector<TransNormerLLM::Cache> caches(static_cast<size_t>(step.micro_batches * v));
  std::vector<std::unique_ptr<CommRequest>> sends;
  std::vector<Tensor> sent;  // kept alive until their sends complete
  double loss = 0;
  const std::vector<PipelineAction> actions =
      v > 1 ? interleaved_pipeline_actions(stage.rank, S, v, step.micro_batches)
            : pipeline_actions(step.schedule, stage.rank, S, step.micro_batches);
  for (const PipelineAction& action : actions) {
    const PipelineStage& at = chunks[static_cast<size_t>(action.chunk)];
    TransNormerLLM::Cache& cache =
        caches[static_cast<size_t>(action.micro_batch * v + action.chunk)];
    if (!action.backward) {
      Tensor tokens = Tensor::empty({B, N}, DType::I32),
             targets = Tensor::empty({B, N}, DType::I32);
      load(action.micro_batch, tokens, targets);
      Tensor x_in, x_out;
      if (!at.first()) {
        x_in = boundary();
        pp.recv(x_in, prev);
      }
      if (!at.last()) x_out = boundary();
      loss += model.forward_stage(tokens, targets, x_in, x_out, cache, action.chunk) /
              static_cast<double>(step.micro_batches);
      if (!at.last()) {
        sends.push_back(pp.send_async(x_out, next));
        sent.push_back(x_out);
      }
    } else {
      Tensor d_out, d_in;
      if (!at.last()) {
        d_out = boundary();
        pp_gradients.recv(d_out, next);
      }
      if (!at.first()) d_in = boundary();
      const bool last = action.micro_batch + 1 == step.micro_batches;
      model.backward_stage(cache, d_out, d_in, 1.0 / static_cast<double>(step.micro_batches),
                           action.chunk, last);
      cache = TransNormerLLM::Cache{};  // this micro-batch's activations are no longer needed
      if (!at.first()) {
        sends.push_back(pp_gradients.send_async(d_in, prev));
        sent.push_back(d_in);
      }
    }
  }
  for (auto& send : sends) send->wait();
  return loss;
}

}  // namespace linpar
