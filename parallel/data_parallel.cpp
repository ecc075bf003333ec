#include "parallel/data_parallel.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/op_stats.h"
#include "core/ops/elementwise.h"

namespace linpar {

namespace {
// `t` becomes a view of `flat` from `offset` on, its values kept (PyTorch
// DDP's gradient_as_bucket_view, Megatron's contiguous buffers).
void view_into(Tensor& t, const Tensor& flat, int64_t offset) {
  Tensor view = flat.slice0(offset, offset + t.numel()).reshape(t.shape());
  view.copy_from(t);
  t = view;
}

size_t index_of(ParameterSet& params, const Parameter* p) {
  for (size_t i = 0; i < params.all().size(); ++i) {
    if (&params.all()[i] == p) return i;
  }
  LINPAR_CHECK(false, "parameter {} is not in this set", p->name);
  return 0;
}
}  // namespace

GradientBuckets::GradientBuckets(ParameterSet& params, Communicator& dp, int64_t bucket_bytes)
    : dp_(dp), bucket_of_(params.all().size()), params_(params) {
  // Backward finishes parameters roughly in reverse order of creation: fill
  // buckets from the last parameter so the first bucket is ready first.
  Bucket current;
  int64_t bytes = 0;
  for (size_t i = params.all().size(); i-- > 0;) {
    Parameter& p = params.all()[i];
    current.params.push_back(&p);
    bucket_of_[i] = buckets_.size();
    bytes += static_cast<int64_t>(p.grad.nbytes());
    if (bytes >= bucket_bytes || i == 0) {
      int64_t elements = 0;
      for (Parameter* q : current.params) elements += q->grad.numel();
      const Tensor& g = current.params.front()->grad;
      current.flat = Tensor::empty({elements}, g.dtype(), g.device());
      // The gradients become views of the bucket (as PyTorch DDP's
      // gradient_as_bucket_view and Megatron's contiguous grad buffer): backward
      // accumulates straight into the buffer NCCL reduces, so starting a bucket
      // and finishing it copy nothing (two passes over every gradient fewer).
      int64_t offset = 0;
      for (Parameter* q : current.params) {
        LINPAR_CHECK(q->grad.dtype() == g.dtype() && q->grad.device() == g.device(),
                     "gradient bucket mixes {} with {}", q->name, current.params.front()->name);
        view_into(q->grad, current.flat, offset);
        offset += q->grad.numel();
      }
      current.pending = current.params.size();
      buckets_.push_back(std::move(current));
      current = Bucket{};
      bytes = 0;
    }
  }
}

GradientBuckets::~GradientBuckets() = default;

void GradientBuckets::start(Bucket& bucket) { bucket.request = dp_.all_reduce_average_async(bucket.flat); }

void GradientBuckets::ready(const std::vector<Parameter*>& params) {
  for (Parameter* p : params) {
    Bucket& bucket = buckets_[bucket_of_[index_of(params_, p)]];
    LINPAR_CHECK(bucket.pending > 0, "gradient of {} reported ready twice", p->name);
    if (--bucket.pending == 0) start(bucket);
  }
}

void GradientBuckets::finish() {
  for (Bucket& bucket : buckets_) {
    if (!bucket.request) start(bucket);
  }
  for (Bucket& bucket : buckets_) {
    bucket.request->wait();  // the average, in the gradients (views of the bucket)
    bucket.request.reset();
    bucket.pending = bucket.params.size();
  }
}

Zero1::Zero1(ParameterSet& params, Communicator& dp, const AdamWConfig& config,
             SumOverModelParallel sum_model_parallel)
    : params_(params), dp_(dp), sum_model_parallel_(std::move(sum_model_parallel)) {
  const DType dtype = params.all().front().value.dtype();
  const DType grad_dtype =
      params.all().front().grad.dtype();  // 2-byte in a plan of 2-byte reduction
  const Device device = params.all().front().value.device();
  for (const Parameter& p : params.all()) {
    LINPAR_CHECK(
        p.value.dtype() == dtype && p.grad.dtype() == grad_dtype && p.value.device() == device,
        "ZeRO-1 over parameters of one dtype and device: {} is not", p.name);
    offsets_.push_back(total_);
    total_ += p.value.numel();
  }
  const int64_t n = dp.size();
  shard_ = (total_ + n - 1) / n;
  // The parameters' values and gradients become views of two flat vectors
  // padded to n shards (Megatron-LM's distributed optimizer: its contiguous
  // param and grad buffers): the reduce-scatter reads the gradients where
  // backward wrote them and leaves this rank's averaged shard in place, the
  // optimizer updates the shard of the values in place, and the all-gather
  // writes every other shard straight into the parameters. No copy of
  // either is kept (the padding, under n elements each, stays zero).
  flat_grads_ = Tensor::zeros({shard_ * n}, grad_dtype, device);
  flat_values_ = Tensor::zeros({shard_ * n}, dtype, device);
  for (size_t i = 0; i < params.all().size(); ++i) {
    view_into(params.all()[i].value, flat_values_, offsets_[i]);
    view_into(params.all()[i].grad, flat_grads_, offsets_[i]);
  }
  const int64_t first = dp.rank() * shard_, last = first + shard_;
  std::vector<AdamWSegment> segments;
  for (size_t i = 0; i < params.all().size(); ++i) {
    const int64_t begin = std::max(first, offsets_[i]);
    const int64_t end = std::min(last, offsets_[i] + params.all()[i].value.numel());
    if (begin >= end) continue;
    slices_.push_back({i, begin - offsets_[i], end - offsets_[i]});
    segments.push_back({flat_values_.slice0(begin, end), flat_grads_.slice0(begin, end),
                        params.all()[i].weight_decay, Tensor()});
  }
  optimizer_ = std::make_unique<AdamW>(config, std::move(segments));
}

// Each phase is one op of the step's tail (core/op_stats.h's Pass::Update;
// parallel/step_plan.h plans them by running this code on meta tensors).
double Zero1::reduce_gradients() {
  {
    const OpScope op("zero.reduce_scatter");
    Tensor mine = flat_grads_.slice0(dp_.rank() * shard_, (dp_.rank() + 1) * shard_);
    dp_.reduce_scatter(flat_grads_, mine);  // in place: this rank's shard of the sum
    scale(1.0 / static_cast<double>(dp_.size()), mine);
  }
  const OpScope op("grad_norm");
  // Squared norm of this rank's shard, leaving out copies another stage also
  // holds (their elements are counted there).
  double local = 0;
  for (size_t k = 0; k < slices_.size(); ++k) {
    const Slice& sl = slices_[k];
    if (!params_.all()[sl.parameter].counted_in_norm) continue;
    const int64_t begin = offsets_[sl.parameter] + sl.begin;
    local += sum_squares(flat_grads_.slice0(begin, begin + (sl.end - sl.begin)));
  }
  const bool meta = flat_grads_.is_meta();
  Tensor norm_sq = meta ? Tensor::empty({1}, DType::F64, Device::Meta)
                        : Tensor::from_vector<double>({1}, {local});
  dp_.all_reduce(norm_sq);
  if (sum_model_parallel_) sum_model_parallel_(norm_sq);  // TP/PP shards are disjoint parts of the model
  return meta ? 0.0 : std::sqrt(norm_sq.data<double>()[0]);
}

void Zero1::step(double lr, double norm, double max_norm) {
  {
    // Clipping folded into the update, as without ZeRO (the same f32 product),
    // on this rank's shard of the parameters themselves.
    const OpScope op("optimizer");
    optimizer_->step(lr, clip_factor(norm, max_norm));
  }
  const OpScope op("zero.all_gather_values");
  const Tensor own = flat_values_.slice0(dp_.rank() * shard_, (dp_.rank() + 1) * shard_);
  dp_.all_gather(own, flat_values_);  // in place: every other shard into the parameters
}

void Zero1::gather(const std::vector<Tensor>& segments, std::vector<Tensor>& whole) {
  const DType dtype = flat_values_.dtype();
  const Device device = flat_values_.device();
  Tensor shard = Tensor::zeros({shard_}, dtype, device);
  const int64_t first = dp_.rank() * shard_;
  for (size_t k = 0; k < slices_.size(); ++k) {
    const int64_t at = offsets_[slices_[k].parameter] + slices_[k].begin - first;
    shard.slice0(at, at + segments[k].numel()).copy_from(segments[k]);
  }
  Tensor flat = Tensor::empty({shard_ * dp_.size()}, dtype, device);
  dp_.all_gather(shard, flat);
  whole.clear();
  for (size_t i = 0; i < params_.all().size(); ++i) {
    whole.push_back(flat.slice0(offsets_[i], offsets_[i] + params_.all()[i].value.numel()).clone());
  }
}

void Zero1::gather_moments(std::vector<Tensor>& m, std::vector<Tensor>& v) {
  gather(optimizer_->first_moments(), m);
  gather(optimizer_->second_moments(), v);
}

void Zero1::scatter_moments(const std::vector<Tensor>& m, const std::vector<Tensor>& v) {
  for (size_t k = 0; k < slices_.size(); ++k) {
    const Slice& s = slices_[k];
    optimizer_->first_moments()[k].copy_from(m[s.parameter].reshape({-1}).slice0(s.begin, s.end));
    optimizer_->second_moments()[k].copy_from(v[s.parameter].reshape({-1}).slice0(s.begin, s.end));
  }
}

}  // namespace linpar
