#include "parallel/pipeline.h"

#include <memory>
#include <vector>

namespace linpar {

double run_pipeline_step(const PipelineStep& step, TransNormerLLM& model, Communicator& pp,
                         const MicroBatchLoader& load,
                         const TransNormerLLM::GradientsReady& last_ready) {
  const PipelineStage& stage = model.stage();
  const int prev = pp.rank() - 1, next = pp.rank() + 1;
  const int64_t B = step.batch, N = step.length;
  auto boundary = [&] {
    return Tensor::empty({B, step.stream_length, step.width}, step.dtype, step.device);
  };
  std::vector<TransNormerLLM::Cache> caches(static_cast<size_t>(step.micro_batches));
  std::vector<std::unique_ptr<CommRequest>> sends;
  std::vector<Tensor> sent;  // kept alive until their sends complete
  double loss = 0;
  for (const PipelineAction& action :
       pipeline_actions(step.schedule, stage.rank, stage.size, step.micro_batches)) {
    const size_t m = static_cast<size_t>(action.micro_batch);
    if (!action.backward) {
      Tensor tokens = Tensor::empty({B, N}, DType::I32),
             targets = Tensor::empty({B, N}, DType::I32);
      load(action.micro_batch, tokens, targets);
      Tensor x_in, x_out;
      if (!stage.first()) {
        x_in = boundary();
        pp.recv(x_in, prev);
      }
      if (!stage.last()) x_out = boundary();
      loss += model.forward_stage(tokens, targets, x_in, x_out, caches[m]) /
              static_cast<double>(step.micro_batches);
      if (!stage.last()) {
        sends.push_back(pp.send_async(x_out, next));
        sent.push_back(x_out);
      }
    } else {
      Tensor d_out, d_in;
      if (!stage.last()) {
        d_out = boundary();
        pp.recv(d_out, next);
      }
      if (!stage.first()) d_in = boundary();
      const bool last = action.micro_batch + 1 == step.micro_batches;
      model.backward_stage(caches[m], d_out, d_in, 1.0 / static_cast<double>(step.micro_batches),
                           last ? last_ready : TransNormerLLM::GradientsReady{});
      caches[m] = TransNormerLLM::Cache{};  // this micro-batch's activations are no longer needed
      if (!stage.first()) {
        sends.push_back(pp.send_async(d_in, prev));
        sent.push_back(d_in);
      }
    }
  }
  for (auto& send : sends) send->wait();
  return loss;
}

}  // namespace linpar
