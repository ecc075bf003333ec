#include "parallel/step_update.h"

#include "core/error.h"
#include "core/op_stats.h"

namespace linpar {

namespace {
// The first and the last stage's embeddings, both named "embedding", each
// hold part of the gradient (input rows, LM-head use): after the sum both
// take the same update and stay identical.
void sum_tied_embedding(ParameterSet& params, Communicator* group) {
  if (group == nullptr) return;
  const OpScope op("embedding.tied_gradients");
  for (Parameter& p : params.all()) {
    if (p.name == "embedding") group->all_reduce(p.grad);
  }
}
}  // namespace

ParameterHooks* StepOptimizer::hooks() const {
  if (zero) return zero.get();
  return buckets.get();
}

StepOptimizer make_step_optimizer(ParameterSet& params,
                                  const std::vector<std::vector<Parameter*>>& groups,
                                  Communicator& gradients, int zero, const AdamWConfig& config,
                                  const SumOverModelParallel& sum, int64_t bucket_bytes) {
  StepOptimizer o;
  if (zero >= 1) {
    o.zero = std::make_unique<ZeroOptimizer>(zero, params, groups, gradients, config, sum);
    return o;
  }
  if (gradients.size() > 1)
    o.buckets = std::make_unique<GradientBuckets>(params, gradients, bucket_bytes, groups);
  o.adamw = std::make_unique<AdamW>(config, params);
  return o;
}

double StepUpdate::update(double lr, double max_norm) const {
  LINPAR_CHECK(params != nullptr && (zero != nullptr) != (optimizer != nullptr),
               "a step's update needs its parameters and ZeRO or an optimizer");
  if (zero != nullptr) {
    const double norm = zero->reduce_gradients(embedding);  // passes Reduce, then Update
    const OpPlace place(kStepLayer, Pass::Update);
    zero->step(lr, norm, max_norm);
    return norm;
  }
  if (buckets != nullptr) {
    // Every bucket not started in the last backward starts here; all are
    // waited for (and, over MPI, scaled to the average).
    const OpPlace place(kStepLayer, Pass::Reduce);
    const OpScope op("dp.gradients");
    buckets->finish();
  }
  const OpPlace place(kStepLayer, Pass::Update);
  sum_tied_embedding(*params, embedding);  // sums DP averages: the DP average of the sums
  double norm = 0;
  {
    const OpScope op("grad_norm");
    norm = global_grad_norm(*params, sum_model_parallel);
  }
  // Clipping is folded into the update (one pass over the gradients fewer).
  const OpScope op("optimizer");
  optimizer->step(lr, clip_factor(norm, max_norm));
  return norm;
}

void StepUpdate::refresh_compute(bool values_changed) const {
  if (zero != nullptr && zero->stage() == 3) return;
  if (params->all().empty() || !params->all().front().compute.defined()) return;
  if (zero == nullptr && !values_changed && optimizer->writes_compute_copies()) return;
  const OpPlace place(kStepLayer, Pass::Update);
  const OpScope op("refresh_compute");
  params->refresh_compute();
}

}  // namespace linpar
