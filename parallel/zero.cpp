#include "parallel/zero.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/elementwise.h"

namespace linpar {

struct ZeroOptimizer::Group {
  std::vector<Parameter*> params;
  std::vector<size_t> indices;   // each parameter's index in the set
  std::vector<int64_t> offsets;  // each parameter's place in the group's flat elements
  std::vector<Shape> shapes;     // and its values' shape (as the model uses them)
  int64_t size = 0, shard = 0;
  bool embedding = false;  // the (possibly tied) embedding: summed over the pipeline's ends
  // Stages 1, 2: n·S, the parameters' values are views of it. Stage 3: this
  // rank's S (in the master dtype), with `compute_shard` its compute copy.
  Tensor values, compute_shard;
  Tensor gathered;    // stage 3: n·S weights while in use (the compute dtype)
  Tensor unsharded;   // stage 3: n·S master values while unsharded (checkpoints)
  Tensor grads;       // n·S: stage 1 always, stages 2, 3 from backward to the reduce-scatter
  Tensor grad_shard;  // stages 2, 3: S, summed over the step's micro-batches
  std::unique_ptr<CommRequest> reduction, gathering;
  bool reduced = false;  // stage 1: its reduce-scatter started this step
};

namespace {
// `t` becomes a view of `flat` from `offset` on; with `keep` its values are
// copied in first (Megatron's contiguous buffers, PyTorch DDP's
// gradient_as_bucket_view).
void view_of(Tensor& t, const Tensor& flat, int64_t offset, const Shape& shape, bool keep) {
  Tensor view = flat.slice0(offset, offset + shape_numel(shape)).reshape(shape);
  if (keep) view.copy_from(t);
  t = view;
}
}  // namespace

ZeroOptimizer::ZeroOptimizer(int stage, ParameterSet& params,
                             std::vector<std::vector<Parameter*>> groups, Communicator& dp,
                             const AdamWConfig& config, SumOverModelParallel sum_model_parallel)
    : stage_(stage), params_(params), dp_(dp), sum_model_parallel_(std::move(sum_model_parallel)) {
  LINPAR_CHECK(stage >= 1 && stage <= 3, "ZeRO stage {}", stage);
  LINPAR_CHECK(!params.all().empty(), "ZeRO over no parameters");
  const Parameter& first = params.all().front();
  value_dtype_ = first.value.dtype();
  grad_dtype_ = first.grad.dtype();  // 2-byte in a plan of 2-byte reduction
  device_ = first.value.device();
  compute_copies_ = first.compute.defined();
  compute_dtype_ = compute_copies_ ? first.compute.dtype() : value_dtype_;
  std::unordered_map<const Parameter*, size_t> index;
  for (size_t i = 0; i < params.all().size(); ++i) {
    const Parameter& p = params.all()[i];
    LINPAR_CHECK(p.value.dtype() == value_dtype_ && p.grad.dtype() == grad_dtype_ &&
                     p.value.device() == device_ && p.compute.defined() == compute_copies_,
                 "ZeRO over parameters of one dtype and device: {} is not", p.name);
    index[&p] = i;
  }
  size_t covered = 0;
  const int64_t n = dp.size(), r = dp.rank();
  std::vector<AdamWSegment> segments;
  for (std::vector<Parameter*>& members : groups) {
    auto g = std::make_unique<Group>();
    g->params = std::move(members);
    for (Parameter* p : g->params) {
      LINPAR_CHECK(index.count(p) == 1, "ZeRO group holds a parameter not in the set");
      g->indices.push_back(index[p]);
      g->offsets.push_back(g->size);
      g->shapes.push_back(p->value.shape());
      g->size += p->value.numel();
      g->embedding = g->embedding || p->name == "embedding";
    }
    covered += g->params.size();
    g->shard = (g->size + n - 1) / n;
    const int64_t padded = g->shard * n;
    // The values: whole in one buffer (stages 1, 2), or this rank's block
    // (stage 3, taken from a whole buffer built once here).
    Tensor whole = Tensor::zeros({padded}, value_dtype_, device_);
    for (size_t k = 0; k < g->params.size(); ++k) {
      Parameter& p = *g->params[k];
      view_of(p.value, whole, g->offsets[k], p.value.shape(), true);
    }
    if (stage == 3) {
      g->values = own(whole, *g).clone();
      if (compute_copies_) {
        g->compute_shard = Tensor::empty({g->shard}, compute_dtype_, device_);
        convert(g->values, g->compute_shard);
      }
      for (Parameter* p : g->params) {
        p->value = Tensor();
        p->compute = Tensor();
      }
    } else {
      g->values = whole;
    }
    if (stage == 1) {
      g->grads = Tensor::zeros({padded}, grad_dtype_, device_);
      for (size_t k = 0; k < g->params.size(); ++k) {
        Parameter& p = *g->params[k];
        view_of(p.grad, g->grads, g->offsets[k], p.grad.shape(), true);
      }
    } else {
      g->grad_shard = Tensor::zeros({g->shard}, grad_dtype_, device_);
      for (Parameter* p : g->params) p->grad = Tensor();
    }
    // AdamW's segments: each parameter's part of this rank's block.
    const int64_t lo = r * g->shard, hi = lo + g->shard;
    for (size_t k = 0; k < g->params.size(); ++k) {
      Parameter& p = *g->params[k];
      const int64_t begin = std::max(lo, g->offsets[k]);
      const int64_t end = std::min(hi, g->offsets[k] + shape_numel(p.box_shape));
      if (begin >= end) continue;
      slices_.push_back({g->indices[k], begin - g->offsets[k], end - g->offsets[k]});
      slice_group_.push_back(groups_.size());
      slice_member_.push_back(k);
      AdamWSegment s;
      s.weight_decay = p.weight_decay;
      if (stage == 3) {
        s.value = g->values.slice0(begin - lo, end - lo);
        if (compute_copies_) s.compute = g->compute_shard.slice0(begin - lo, end - lo);
      } else {
        s.value = g->values.slice0(begin, end);
      }
      s.grad =
          stage == 1 ? g->grads.slice0(begin, end) : g->grad_shard.slice0(begin - lo, end - lo);
      segment_grads_.push_back(s.grad);
      segments.push_back(std::move(s));
    }
    groups_.push_back(std::move(g));
  }
  LINPAR_CHECK(covered == params.all().size(), "ZeRO groups hold {} of {} parameters", covered,
               params.all().size());
  optimizer_ = std::make_unique<AdamW>(config, std::move(segments));
}

ZeroOptimizer::~ZeroOptimizer() {
  // Nothing in flight outlives its buffers.
  for (auto& g : groups_) {
    if (g->reduction) g->reduction->wait();
    if (g->gathering) g->gathering->wait();
  }
}

Tensor ZeroOptimizer::own(const Tensor& whole, const Group& g) const {
  return whole.slice0(dp_.rank() * g.shard, (dp_.rank() + 1) * g.shard);
}

int64_t ZeroOptimizer::shard_elements() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g->shard;
  return n;
}

void ZeroOptimizer::gather(Group& g) {
  if (g.gathered.defined()) return;
  g.gathered = Tensor::empty({g.shard * dp_.size()}, compute_dtype_, device_);
  g.gathering = dp_.all_gather_async(compute_copies_ ? g.compute_shard : g.values, g.gathered);
}

void ZeroOptimizer::materialize(Group& g) {
  gather(g);
  if (g.gathering) {
    g.gathering->wait();
    g.gathering.reset();
  }
  for (size_t k = 0; k < g.params.size(); ++k) {
    Parameter& p = *g.params[k];
    Tensor& weight = compute_copies_ ? p.compute : p.value;
    if (!weight.defined()) view_of(weight, g.gathered, g.offsets[k], g.shapes[k], false);
  }
}

void ZeroOptimizer::release(Group& g) {
  if (g.gathering) {
    g.gathering->wait();
    g.gathering.reset();
  }
  g.gathered = Tensor();
  for (Parameter* p : g.params) (compute_copies_ ? p->compute : p->value) = Tensor();
}

void ZeroOptimizer::make_gradients(Group& g) {
  if (g.grads.defined() && !g.reduction) return;  // this micro-batch's, being written
  complete_reduction(g);                          // the previous micro-batch's, still in flight
  g.grads = Tensor::zeros({g.shard * dp_.size()}, grad_dtype_, device_);
  for (size_t k = 0; k < g.params.size(); ++k) {
    Parameter& p = *g.params[k];
    view_of(p.grad, g.grads, g.offsets[k], g.shapes[k], false);
  }
}

void ZeroOptimizer::complete_reduction(Group& g) {
  if (!g.reduction) return;
  g.reduction->wait();
  g.reduction.reset();
  if (stage_ == 1) return;
  axpy(1.0, own(g.grads, g), g.grad_shard);
  g.grads = Tensor();
}

void ZeroOptimizer::before_forward(int group, int next) {
  if (stage_ < 3) return;
  materialize(*groups_.at(static_cast<size_t>(group)));
  if (next >= 0) gather(*groups_.at(static_cast<size_t>(next)));  // prefetch
}

void ZeroOptimizer::after_forward(int group) {
  if (stage_ == 3) release(*groups_.at(static_cast<size_t>(group)));
}

void ZeroOptimizer::before_backward(int group, int next) {
  Group& g = *groups_.at(static_cast<size_t>(group));
  if (stage_ >= 2) make_gradients(g);
  if (stage_ < 3) return;
  materialize(g);
  if (next >= 0) gather(*groups_.at(static_cast<size_t>(next)));
}

void ZeroOptimizer::after_backward(int group, bool last_micro_batch) {
  Group& g = *groups_.at(static_cast<size_t>(group));
  if (stage_ == 1) {
    if (!last_micro_batch) return;
    // In place: this rank's block of the sum, the rest of the buffer spent.
    Tensor mine = own(g.grads, g);
    g.reduction = dp_.reduce_scatter_async(g.grads, mine);
    g.reduced = true;
    return;
  }
  // At most one other group's reduce-scatter stays in flight beside this one.
  for (auto& other : groups_) {
    if (other.get() != &g) complete_reduction(*other);
  }
  Tensor mine = own(g.grads, g);
  g.reduction = dp_.reduce_scatter_async(g.grads, mine);
  for (Parameter* p : g.params) p->grad = Tensor();
  if (stage_ == 3) release(g);
}

void ZeroOptimizer::zero_grad() {
  LINPAR_OP_TIME("zero_grad", device_);
  for (auto& g : groups_) {
    if (stage_ == 1) {
      g->grads.fill_zero();
    } else {
      g->grad_shard.fill_zero();
    }
  }
}

// Each phase is one op of the step's tail (core/op_stats.h; parallel/step_plan.h
// plans them by running this code on meta tensors).
double ZeroOptimizer::reduce_gradients(Communicator* embedding) {
  const double average = 1.0 / static_cast<double>(dp_.size());
  {
    const OpPlace place(kStepLayer, Pass::Reduce);
    const OpScope op("zero.reduce_scatter");
    for (auto& g : groups_) {
      // A group whose hook never ran (a plan) starts here.
      if (stage_ == 1 && !g->reduced) {
        Tensor mine = own(g->grads, *g);
        g->reduction = dp_.reduce_scatter_async(g->grads, mine);
      }
    }
    for (auto& g : groups_) {
      complete_reduction(*g);
      g->reduced = false;
      Tensor shard = stage_ == 1 ? own(g->grads, *g) : g->grad_shard;
      scale(average, shard);
    }
  }
  const OpPlace place(kStepLayer, Pass::Update);
  if (embedding != nullptr) {
    // The first and the last stage's copies each hold part of the gradient
    // (input rows, LM-head use); the same shard on both (one group each).
    const OpScope op("embedding.tied_gradients");
    for (auto& g : groups_) {
      if (!g->embedding) continue;
      Tensor shard = stage_ == 1 ? own(g->grads, *g) : g->grad_shard;
      embedding->all_reduce(shard);
    }
  }
  const OpScope op("grad_norm");
  // Squared norm of this rank's shard, leaving out copies another stage also
  // holds (their elements are counted there).
  double local = 0;
  const bool meta = device_ == Device::Meta;
  for (size_t k = 0; k < slices_.size(); ++k) {
    if (!params_.all()[slices_[k].parameter].counted_in_norm) continue;
    local += sum_squares(segment_grads_[k]);
  }
  Tensor norm_sq = meta ? Tensor::empty({1}, DType::F64, Device::Meta)
                        : Tensor::from_vector<double>({1}, {local});
  dp_.all_reduce(norm_sq);
  if (sum_model_parallel_)
    sum_model_parallel_(norm_sq);  // TP/PP shards are disjoint parts of the model
  return meta ? 0.0 : std::sqrt(norm_sq.data<double>()[0]);
}

void ZeroOptimizer::step(double lr, double norm, double max_norm) {
  {
    // Clipping folded into the update, as without ZeRO (the same f32 product).
    const OpScope op("optimizer");
    optimizer_->step(lr, clip_factor(norm, max_norm));
  }
  if (stage_ == 3) return;  // the shards are what the next gather reads
  const OpScope op("zero.all_gather_values");
  for (auto& g : groups_) {
    const Tensor mine = own(g->values, *g);
    dp_.all_gather(mine, g->values);  // in place: every other shard into the parameters
  }
}

void ZeroOptimizer::gather_moments(std::vector<Tensor>& m, std::vector<Tensor>& v) {
  for (auto [moments, whole] : {std::pair{&optimizer_->first_moments(), &m},
                                std::pair{&optimizer_->second_moments(), &v}}) {
    whole->assign(params_.all().size(), Tensor());
    std::vector<Tensor> blocks;
    for (auto& g : groups_) blocks.push_back(Tensor::zeros({g->shard}, value_dtype_, device_));
    for (size_t k = 0; k < slices_.size(); ++k) {
      const Group& g = *groups_[slice_group_[k]];
      const Slice& s = slices_[k];
      const int64_t at = g.offsets[slice_member_[k]] + s.begin - dp_.rank() * g.shard;
      blocks[slice_group_[k]].slice0(at, at + (s.end - s.begin)).copy_from((*moments)[k]);
    }
    for (size_t i = 0; i < groups_.size(); ++i) {
      const Group& g = *groups_[i];
      Tensor flat = Tensor::empty({g.shard * dp_.size()}, value_dtype_, device_);
      dp_.all_gather(blocks[i], flat);
      for (size_t k = 0; k < g.params.size(); ++k) {
        (*whole)[g.indices[k]] =
            flat.slice0(g.offsets[k], g.offsets[k] + shape_numel(g.params[k]->box_shape)).clone();
      }
    }
  }
}

void ZeroOptimizer::scatter_moments(const std::vector<Tensor>& m, const std::vector<Tensor>& v) {
  for (size_t k = 0; k < slices_.size(); ++k) {
    const Slice& s = slices_[k];
    optimizer_->first_moments()[k].copy_from(m[s.parameter].reshape({-1}).slice0(s.begin, s.end));
    optimizer_->second_moments()[k].copy_from(v[s.parameter].reshape({-1}).slice0(s.begin, s.end));
  }
}

void ZeroOptimizer::unshard() {
  if (stage_ < 3) return;
  for (auto& g : groups_) {
    g->unsharded = Tensor::empty({g->shard * dp_.size()}, value_dtype_, device_);
    dp_.all_gather(g->values, g->unsharded);
    for (size_t k = 0; k < g->params.size(); ++k) {
      Parameter& p = *g->params[k];
      view_of(p.value, g->unsharded, g->offsets[k], g->shapes[k], false);
    }
  }
}

void ZeroOptimizer::reshard() {
  if (stage_ < 3) return;
  for (auto& g : groups_) {
    LINPAR_CHECK(g->unsharded.defined(), "ZeRO-3 reshard without unshard");
    g->values.copy_from(own(g->unsharded, *g));
    if (compute_copies_) convert(g->values, g->compute_shard);
    g->unsharded = Tensor();
    for (Parameter* p : g->params) p->value = Tensor();
  }
}

}  // namespace linpar
