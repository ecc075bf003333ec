#include "model/optimizer.h"

#include <cmath>
#include <numbers>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/elementwise_kernels.h"
#endif

namespace linpar {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const double min_lr = max_lr * min_lr_ratio;
  const int64_t decay_steps = total_steps - warmup_steps;
  if (decay_steps <= 1) return max_lr;
  const double progress = std::min(
      1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps - 1));
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

namespace {
std::vector<AdamWSegment> whole_parameters(ParameterSet& params) {
  std::vector<AdamWSegment> segments;
  for (Parameter& p : params.all()) {
    segments.push_back({p.value.reshape({-1}), p.grad.reshape({-1}), p.weight_decay,
                        p.compute.defined() ? p.compute.reshape({-1}) : Tensor()});
  }
  return segments;
}
}  // namespace

AdamW::AdamW(const AdamWConfig& config, ParameterSet& params)
    : AdamW(config, whole_parameters(params)) {
  // Fused only when every copy is bf16 on the GPU (the kernel's case).
  // (A meta set with bf16 copies is the GPU's, planned: parallel/step_plan.h.)
  writes_compute_ = true;
  for (const AdamWSegment& s : segments_) {
    const bool gpu = s.compute.device() == Device::CUDA || s.compute.device() == Device::Meta;
    if (!(s.compute.defined() && gpu && s.compute.dtype() == DType::BF16)) writes_compute_ = false;
  }
}

AdamW::AdamW(const AdamWConfig& config, std::vector<AdamWSegment> segments)
    : config_(config), segments_(std::move(segments)) {
  for (const AdamWSegment& s : segments_) {
    LINPAR_CHECK(s.value.numel() == s.grad.numel(), "AdamW segment: {} values, {} grads",
                 s.value.numel(), s.grad.numel());
    LINPAR_CHECK(s.value.device() != Device::CUDA || s.value.dtype() == DType::F32,
                 "AdamW on the GPU keeps f32 values (master weights), not {}",
                 dtype_name(s.value.dtype()));
    m_.push_back(Tensor::zeros(s.value.shape(), s.value.dtype(), s.value.device()));
    v_.push_back(Tensor::zeros(s.value.shape(), s.value.dtype(), s.value.device()));
  }
}

void AdamW::step(double lr, double grad_scale) {
  LINPAR_OP_TIME("adamw", segments_.empty() ? Device::CPU : segments_.front().value.device());
  ++step_;
  const double bias1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  for (size_t index = 0; index < segments_.size(); ++index) {
    AdamWSegment& s = segments_[index];
    const double decay = s.weight_decay ? config_.weight_decay : 0.0;
    // The values and gradients read, the values written; AdamW also reads
    // and writes both moments; the fused GPU update writes the bf16 copy.
    const Tensor* copy = writes_compute_ ? &s.compute : nullptr;
    if (config_.plain_sgd) {
      count_traffic(OpKind::Memory, {&s.value, &s.grad}, {&s.value, copy});
    } else {
      count_traffic(OpKind::Memory, {&s.value, &s.grad, &m_[index], &v_[index]},
                    {&s.value, &m_[index], &v_[index], copy});
    }
    if (s.value.is_meta()) continue;  // planned (parallel/step_plan.h): no values to update
    if (s.value.device() == Device::CUDA) {
#ifdef LINPAR_HAVE_CUDA
      const cuda::AdamWStep k{static_cast<float>(lr), static_cast<float>(config_.beta1),
                              static_cast<float>(config_.beta2), static_cast<float>(config_.eps),
                              static_cast<float>(decay), static_cast<float>(bias1),
                              static_cast<float>(bias2), static_cast<float>(grad_scale),
                              config_.plain_sgd};
      uint16_t* compute = writes_compute_ ? reinterpret_cast<uint16_t*>(s.compute.device_data<bf16>()) : nullptr;
      cuda::adamw_f32(k, s.value.device_data<float>(), s.grad.device_data<float>(),
                      m_[index].device_data<float>(), v_[index].device_data<float>(), compute,
                      s.value.numel());
      continue;
#else
      user_error("--device cuda: this linpar was built without CUDA");
#endif
    }
    LINPAR_DISPATCH_FLOAT(s.value.dtype(), "adamw", [&]<typename T>() {
      T* w = s.value.data<T>();
      const T* g = s.grad.data<T>();
      T* mp = m_[index].data<T>();
      T* vp = v_[index].data<T>();
      const T b1 = static_cast<T>(config_.beta1), b2 = static_cast<T>(config_.beta2);
      const T gs = static_cast<T>(grad_scale);
      const bool scaled = grad_scale != 1.0;
      if (config_.plain_sgd) {
        for (int64_t i = 0; i < s.value.numel(); ++i) {
          const T gi = scaled ? g[i] * gs : g[i];
          w[i] -= static_cast<T>(lr) * (gi + static_cast<T>(decay) * w[i]);
        }
        return;
      }
      for (int64_t i = 0; i < s.value.numel(); ++i) {
        const T gi = scaled ? g[i] * gs : g[i];
        mp[i] = b1 * mp[i] + (T(1) - b1) * gi;
        vp[i] = b2 * vp[i] + (T(1) - b2) * gi * gi;
        const T m_hat = mp[i] / static_cast<T>(bias1);
        const T v_hat = vp[i] / static_cast<T>(bias2);
        w[i] -= static_cast<T>(lr) * (m_hat / (std::sqrt(v_hat) + static_cast<T>(config_.eps)) +
                                      static_cast<T>(decay) * w[i]);
      }
    });
  }
}

double global_grad_norm(const ParameterSet& params, const SumOverModelParallel& sum) {
  LINPAR_OP_TIME("grad_norm", params.all().empty() ? Device::CPU : params.all().front().grad.device());
  std::vector<const Tensor*> grads;
  for (const Parameter& p : params.all()) {
    if (p.counted_in_norm) grads.push_back(&p.grad);
  }
  double total = sum_squares(grads);
  if (sum) {
    // Planned (meta gradients): the sum's collectives on a meta scalar.
    const bool meta = !params.all().empty() && params.all().front().grad.is_meta();
    Tensor t = meta ? Tensor::empty({1}, DType::F64, Device::Meta)
                    : Tensor::from_vector<double>({1}, {total});
    sum(t);
    if (!meta) total = t.data<double>()[0];
  }
  return std::sqrt(total);
}

double global_grad_norm(const ParameterSet& params, const TensorParallel& tp) {
  return global_grad_norm(params, [&tp](Tensor& t) { tp.all_reduce(t); });
}

double clip_grad_norm(ParameterSet& params, double max_norm, const TensorParallel& tp) {
  return clip_grad_norm(params, max_norm, [&tp](Tensor& t) { tp.all_reduce(t); });
}

double clip_factor(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

double clip_grad_norm(ParameterSet& params, double max_norm, const SumOverModelParallel& sum) {
  const double norm = global_grad_norm(params, sum);
  const double factor = clip_factor(norm, max_norm);
  if (factor != 1.0) {
    for (Parameter& p : params.all()) scale(factor, p.grad);
  }
  return norm;
}

}  // namespace linpar
