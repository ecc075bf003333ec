#include "model/plan_model.h"

#include <functional>
#include <memory>

#include "core/op_stats.h"
#include "core/plan_communicator.h"
#include "model/transnormer.h"

namespace linpar {

namespace {

// A layer's op as planned: its collectives go over TP and SP only.
PlannedOp planned(RecordedOp&& r) {
  for (const RecordedCollective& c : r.collectives) {
    LINPAR_CHECK(c.group == "tp" || c.group == "sp",
                 "{} communicated over group {} (a layer's plan knows tp and sp)", r.name, c.group);
  }
  return planned_op(std::move(r));
}

DType activations_of(int64_t element_bytes) {
  switch (element_bytes) {
    case 2:
      return DType::BF16;
    case 4:
      return DType::F32;
    case 8:
      return DType::F64;
    default:
      LINPAR_CHECK(false, "a plan of {}-byte activations (2, 4 or 8)", element_bytes);
  }
  __builtin_unreachable();
}

// The model of this shard on meta tensors over planning groups, handed to
// `run` with meta tokens [B, N] (the residual stream's tokens, all of the
// sample's on this rank: the model shards them itself under --tp-sp).
void run_on_meta(const ModelConfig& config, const TensorParallel& tp, const SequencePlan& sp,
                 const StepShape& s, Recompute recompute,
                 const std::function<void(TransNormerLLM&, const Tensor& tokens)>& run) {
  const DType compute = activations_of(s.element_bytes);
  // bf16 activations keep f32 master weights and gradients (mixed precision).
  const DType weights = compute == DType::BF16 ? DType::F32 : compute;
  PlanCommunicator tp_group("tp", tp.rank, tp.size);
  PlanCommunicator sp_group("sp", sp.rank, sp.size);
  const TensorParallel planned_tp{&tp_group, tp.rank, tp.size, tp.sequence_parallel};
  std::unique_ptr<SequenceAttention> attention;
  if (sp.size > 1) {
    LINPAR_CHECK(sp.factory != nullptr, "a plan of sp {} without a strategy factory", sp.size);
    attention = sp.factory(sp.kind, sp_group);
  }
  const SequenceParallel planned_sp{attention.get(), sp.rank, sp.size};
  TransNormerLLM model =
      TransNormerLLM::on_meta(config, weights, compute, planned_tp, nullptr, planned_sp);
  model.set_recompute(recompute);
  run(model, Tensor::empty({s.batch, s.length}, DType::I32, Device::Meta));
}

}  // namespace

OpPlan plan_every_layer(const ModelConfig& config, const TensorParallel& tp, const SequencePlan& sp,
                        const StepShape& s, Recompute recompute) {
  OpPlan plan;
  run_on_meta(config, tp, sp, s, recompute, [&](TransNormerLLM& model, const Tensor& tokens) {
    // Recorded from the step's start: building and placing the model is none of it.
    OpRecorder recorder;
    {
      TransNormerLLM::Cache cache;
      model.forward(tokens, tokens, cache);
      model.backward(cache, 1.0);
    }
    LINPAR_CHECK(recorder.outside().flops == 0 && recorder.outside().bytes_read == 0 &&
                     recorder.outside().collectives.empty(),
                 "the model ran work outside its op scopes ({} FLOPs, {} bytes, {} collectives)",
                 recorder.outside().flops, recorder.outside().bytes_read,
                 recorder.outside().collectives.size());
    plan.reserve(recorder.ops().size());
    for (RecordedOp& r : recorder.take_ops()) plan.add(planned(std::move(r)));
  });
  return plan;
}

PlannedMemory plan_memory(const ModelConfig& config, const TensorParallel& tp,
                          const SequencePlan& sp, const StepShape& s, Recompute recompute) {
  PlannedMemory m;
  run_on_meta(config, tp, sp, s, recompute, [&](TransNormerLLM& model, const Tensor&) {
    MetaMemory counted;
    // The batch as the cache keeps it: tokens and targets copied to the device.
    const Tensor tokens = Tensor::empty({s.batch, s.length}, DType::I32, Device::Meta);
    const Tensor targets = Tensor::empty({s.batch, s.length}, DType::I32, Device::Meta);
    TransNormerLLM::Cache cache;
    model.forward(tokens, targets, cache);
    m.cache = counted.live();
    m.forward_peak = counted.peak() - m.cache;
    counted.reset_peak();
    model.backward(cache, 1.0);
    m.backward_peak = counted.peak() - m.cache;
  });
  return m;
}

OpPlan plan_model(const ModelConfig& config, const TensorParallel& tp, const SequencePlan& sp,
                  const StepShape& s, Recompute recompute) {
  // Layers 1 … L−1 are built alike: they differ from each other only in
  // their decay slopes' values and their names (LRPE is on every layer or
  // the first alone). So the model runs with two layers and layer 1's ops,
  // forward and backward, stand for each of layers 1 … L−1 (forward in
  // ascending order, backward descending with each layer's recomputation
  // before its backward, as the model's loops run them):
  // a 96-layer plan costs what a 2-layer one does, which the layout search
  // pays per plan (tests/model/plan_model_test.cpp compares the two).
  const int64_t L = config.n_layers;
  if (L <= 2) return plan_every_layer(config, tp, sp, s, recompute);
  ModelConfig two = config;
  two.n_layers = 2;
  for (int64_t l = 0; l < L; ++l) {
    LINPAR_CHECK(config.layer_uses_lrpe(l) == two.layer_uses_lrpe(std::min<int64_t>(l, 1)),
                 "layer {} is not built like layer {} of the two-layer plan", l,
                 std::min<int64_t>(l, 1));
  }
  std::vector<PlannedOp> ops = std::move(plan_every_layer(two, tp, sp, s, recompute).mutable_ops());
  const std::string one = "layers.1.";
  size_t layer_one = 0;
  for (PlannedOp& op : ops) {
    if (op.layer != 1) continue;
    LINPAR_CHECK(op.name.starts_with(one), "layer 1's op {} is not named for it", op.name);
    op.name.erase(0, one.size());  // the name within the layer
    ++layer_one;
  }
  OpPlan plan;
  plan.reserve(ops.size() + static_cast<size_t>(L - 2) * layer_one);
  for (size_t i = 0; i < ops.size();) {
    if (ops[i].layer != 1) {
      plan.add(std::move(ops[i++]));
      continue;
    }
    // One sweep of layer 1: its forward, or its recomputation and backward.
    const bool forward = ops[i].pass == Pass::Forward;
    size_t end = i;
    while (end < ops.size() && ops[end].layer == 1 && (ops[end].pass == Pass::Forward) == forward)
      ++end;
    const size_t first_copy = plan.ops().size();  // the sweep's first layer's ops start here
    for (int64_t k = 1; k < L; ++k) {
      const int64_t layer = forward ? k : L - k;
      const std::string prefix = fmt::format("layers.{}.", layer);
      for (size_t j = i; j < end; ++j) {
        // The copy without the name, which is built once at its length (the
        // layout search builds these by the million).
        std::string tail = std::move(ops[j].name);
        PlannedOp op = ops[j];
        ops[j].name = std::move(tail);
        op.layer = static_cast<int32_t>(layer);
        if (k > 1) op.repeats = static_cast<int32_t>(first_copy + (j - i));
        op.name.reserve(prefix.size() + ops[j].name.size());
        op.name.append(prefix).append(ops[j].name);
        plan.add(std::move(op));
      }
    }
    i = end;
  }
  return plan;
}

}  // namespace linpar
