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

GradientBuckets::GradientBuckets(ParameterSet& params, Communicator& dp, int64_t bucket_bytes,
                                 std::vector<std::vector<Parameter*>> groups)
    : dp_(dp), bucket_of_(params.all().size()), params_(params), groups_(std::move(groups)) {
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

void GradientBuckets::after_backward(int group, bool last_micro_batch) {
  if (last_micro_batch) ready(groups_.at(static_cast<size_t>(group)));
}

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

}  // namespace linpar
