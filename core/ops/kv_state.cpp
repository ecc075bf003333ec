#include "core/ops/kv_state.h"

#include <cmath>
#include <initializer_list>
#include <utility>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#include "core/ops/gemm.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/kv_state_kernels.h"
#endif

namespace linpar {

namespace {

struct StateDims {
  int64_t batch, heads, length, dk, dv;
};

void check_slopes(const char* op, const std::vector<double>& slopes, int64_t heads) {
  LINPAR_CHECK(static_cast<int64_t>(slopes.size()) == heads, "{}: {} slopes for {} heads", op,
               slopes.size(), heads);
}

// rows: [C, d] -> weighted[C, d] = w[t]·rows[t]; C·d FLOPs.
template <typename T>
void weight_rows(const T* rows, const std::vector<T>& w, int64_t d, std::vector<T>& weighted) {
  const int64_t m = static_cast<int64_t>(w.size());
  weighted.resize(static_cast<size_t>(m * d));
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t c = 0; c < d; ++c) weighted[static_cast<size_t>(t * d + c)] = w[static_cast<size_t>(t)] * rows[t * d + c];
  }
  count_flops(m * d);
}

// Powers are exp(−n·s), never repeated products (as in lightning attention).
template <typename T>
std::vector<T> key_weights(double slope, int64_t length) {  // λ^{C−1−j}
  std::vector<T> w(static_cast<size_t>(length));
  for (int64_t j = 0; j < length; ++j)
    w[static_cast<size_t>(j)] = static_cast<T>(std::exp(-slope * static_cast<double>(length - 1 - j)));
  return w;
}

template <typename T>
std::vector<T> query_weights(double slope, int64_t length) {  // λ^{t+1}
  std::vector<T> w(static_cast<size_t>(length));
  for (int64_t t = 0; t < length; ++t)
    w[static_cast<size_t>(t)] = static_cast<T>(std::exp(-slope * static_cast<double>(t + 1)));
  return w;
}

// a: [B, H, C, da], b: [B, H, C, db] of one chunk, kv: [B, H, da, db]. Shapes only.
StateDims chunk_dims(const char* op, const Tensor& a, const Tensor& b, const Tensor& kv,
                     const std::vector<double>& slopes) {
  LINPAR_CHECK(a.ndim() == 4 && b.ndim() == 4, "{}: {} and {}", op, shape_string(a.shape()),
               shape_string(b.shape()));
  StateDims d{a.dim(0), a.dim(1), a.dim(2), a.dim(3), kv.ndim() == 4 ? kv.dim(3) : -1};
  check_shape(op, "second operand", b, {d.batch, d.heads, d.length, b.dim(3)});
  check_shape(op, "state", kv, {d.batch, d.heads, d.dk, d.dv});
  check_slopes(op, slopes, d.heads);
  return d;
}

// The CPU reference: a, b and the state of one floating dtype.
StateDims check_chunk(const char* op, const Tensor& a, const Tensor& b, const Tensor& kv,
                      const std::vector<double>& slopes) {
  check_cpu_float(op, a);
  check_same(op, a, b);
  check_same(op, a, kv);
  return chunk_dims(op, a, b, kv, slopes);
}

// The GPU: a, b CUDA f32 or bf16 alike (returns whether bf16), every state a
// CUDA f32 tensor (core/cuda/kv_state_kernels.cu).
bool check_chunk_on_gpu(const char* op, const Tensor& a, const Tensor& b,
                        std::initializer_list<std::pair<const char*, const Tensor*>> states) {
  const bool bf16 = cuda_operands(op, {&a, &b});
  for (const auto& [what, state] : states) check_cuda_f32(op, what, *state);
  return bf16;
}

#ifdef LINPAR_HAVE_CUDA
cuda::KvStateDims gpu_dims(const char* op, const StateDims& d) {
  LINPAR_CHECK(d.heads <= cuda::kMaxKvStateHeads && d.batch * d.heads <= 65535,
               "{}: {} heads × batch {} (the kernels take at most {} heads and 65535 heads in all)",
               op, d.heads, d.batch, cuda::kMaxKvStateHeads);
  return {d.batch, d.heads, d.length, d.dk, d.dv};
}
#endif

}  // namespace

void chunk_state_forward(const Tensor& k, const Tensor& v, const std::vector<double>& slopes,
                         Tensor& kv) {
  LINPAR_OP_TIME("chunk_state_forward", k.device());
  count_traffic(OpKind::Attention, {&k, &v}, {&kv});
  count_attention_width(k.dim(-1));
  if (k.is_meta()) {
    const StateDims d = chunk_dims("chunk_state_forward", k, v, kv, slopes);
    plan_only(k, chunk_state_forward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  if (k.device() == Device::CUDA) {
    const char* op = "chunk_state_forward";
    [[maybe_unused]] const bool bf16 = check_chunk_on_gpu(op, k, v, {{"kv", &kv}});
    const StateDims d = chunk_dims(op, k, v, kv, slopes);
    check_shape(op, "v", v, {d.batch, d.heads, d.length, d.dv});
    LINPAR_CUDA_OR_FAIL(op, cuda::chunk_state_forward(gpu_dims(op, d), slopes.data(), bf16,
                                                      k.raw_data(), v.raw_data(),
                                                      kv.device_data<float>()));
    count_flops(chunk_state_forward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  const StateDims d = check_chunk("chunk_state_forward", k, v, kv, slopes);
  check_shape("chunk_state_forward", "v", v, {d.batch, d.heads, d.length, d.dv});
  LINPAR_DISPATCH_FLOAT(k.dtype(), "chunk_state_forward", [&]<typename T>() {
    std::vector<T> weighted;
    for (int64_t h = 0; h < d.heads; ++h) {
      const std::vector<T> w = key_weights<T>(slopes[static_cast<size_t>(h)], d.length);
      for (int64_t b = 0; b < d.batch; ++b) {
        const int64_t head = b * d.heads + h;
        weight_rows(k.data<T>() + head * d.length * d.dk, w, d.dk, weighted);
        gemm<T>(true, false, d.dk, d.dv, d.length, T(1), weighted.data(), d.dk,
                v.data<T>() + head * d.length * d.dv, d.dv, T(0), kv.data<T>() + head * d.dk * d.dv,
                d.dv);
      }
    }
  });
}

void chunk_state_backward(const Tensor& k, const Tensor& v, const std::vector<double>& slopes,
                          const Tensor& d_kv, Tensor& dk, Tensor& dv) {
  LINPAR_OP_TIME("chunk_state_backward", k.device());
  // dk and dv are accumulated.
  count_traffic(OpKind::Attention, {&k, &v, &d_kv, &dk, &dv}, {&dk, &dv});
  count_attention_width(k.dim(-1));
  if (k.is_meta()) {
    const StateDims d = chunk_dims("chunk_state_backward", k, v, d_kv, slopes);
    plan_only(k, chunk_state_backward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  if (k.device() == Device::CUDA) {
    const char* op = "chunk_state_backward";
    [[maybe_unused]] const bool bf16 = check_chunk_on_gpu(op, k, v, {{"d_kv", &d_kv}});
    cuda_operands(op, {&k, &dk, &dv});
    const StateDims d = chunk_dims(op, k, v, d_kv, slopes);
    check_shape(op, "dk", dk, k.shape());
    check_shape(op, "dv", dv, v.shape());
    LINPAR_CUDA_OR_FAIL(op, cuda::chunk_state_backward(gpu_dims(op, d), slopes.data(), bf16,
                                                       k.raw_data(), v.raw_data(),
                                                       d_kv.device_data<float>(), dk.raw_data(),
                                                       dv.raw_data()));
    count_flops(chunk_state_backward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  const StateDims d = check_chunk("chunk_state_backward", k, v, d_kv, slopes);
  check_shape("chunk_state_backward", "dk", dk, k.shape());
  check_shape("chunk_state_backward", "dv", dv, v.shape());
  LINPAR_DISPATCH_FLOAT(k.dtype(), "chunk_state_backward", [&]<typename T>() {
    std::vector<T> weighted;
    for (int64_t h = 0; h < d.heads; ++h) {
      const std::vector<T> w = key_weights<T>(slopes[static_cast<size_t>(h)], d.length);
      for (int64_t b = 0; b < d.batch; ++b) {
        const int64_t head = b * d.heads + h;
        const T* g = d_kv.data<T>() + head * d.dk * d.dv;
        // dK += diag(w) V d_kvᵀ
        weight_rows(v.data<T>() + head * d.length * d.dv, w, d.dv, weighted);
        gemm<T>(false, true, d.length, d.dk, d.dv, T(1), weighted.data(), d.dv, g, d.dv, T(1),
                dk.data<T>() + head * d.length * d.dk, d.dk);
        // dV += diag(w) K d_kv
        weight_rows(k.data<T>() + head * d.length * d.dk, w, d.dk, weighted);
        gemm<T>(false, false, d.length, d.dv, d.dk, T(1), weighted.data(), d.dk, g, d.dv, T(1),
                dv.data<T>() + head * d.length * d.dv, d.dv);
      }
    }
  });
}

void inter_chunk_forward(const Tensor& q, const std::vector<double>& slopes, const Tensor& kv_in,
                         Tensor& o) {
  LINPAR_OP_TIME("inter_chunk_forward", q.device());
  // o is accumulated.
  count_traffic(OpKind::Attention, {&q, &kv_in, &o}, {&o});
  count_attention_width(q.dim(-1));
  if (q.is_meta()) {
    const StateDims d = chunk_dims("inter_chunk_forward", q, o, kv_in, slopes);
    plan_only(q, inter_chunk_forward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  if (q.device() == Device::CUDA) {
    const char* op = "inter_chunk_forward";
    [[maybe_unused]] const bool bf16 = check_chunk_on_gpu(op, q, o, {{"kv_in", &kv_in}});
    const StateDims d = chunk_dims(op, q, o, kv_in, slopes);
    check_shape(op, "o", o, {d.batch, d.heads, d.length, d.dv});
    LINPAR_CUDA_OR_FAIL(op, cuda::inter_chunk_forward(gpu_dims(op, d), slopes.data(), bf16,
                                                      q.raw_data(), kv_in.device_data<float>(),
                                                      o.raw_data()));
    count_flops(inter_chunk_forward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  const StateDims d = check_chunk("inter_chunk_forward", q, o, kv_in, slopes);
  check_shape("inter_chunk_forward", "o", o, {d.batch, d.heads, d.length, d.dv});
  LINPAR_DISPATCH_FLOAT(q.dtype(), "inter_chunk_forward", [&]<typename T>() {
    std::vector<T> weighted;
    for (int64_t h = 0; h < d.heads; ++h) {
      const std::vector<T> w = query_weights<T>(slopes[static_cast<size_t>(h)], d.length);
      for (int64_t b = 0; b < d.batch; ++b) {
        const int64_t head = b * d.heads + h;
        weight_rows(q.data<T>() + head * d.length * d.dk, w, d.dk, weighted);
        gemm<T>(false, false, d.length, d.dv, d.dk, T(1), weighted.data(), d.dk,
                kv_in.data<T>() + head * d.dk * d.dv, d.dv, T(1),
                o.data<T>() + head * d.length * d.dv, d.dv);
      }
    }
  });
}

void inter_chunk_backward(const Tensor& q, const std::vector<double>& slopes, const Tensor& kv_in,
                          const Tensor& d_o, Tensor& dq, Tensor& d_kv_in) {
  LINPAR_OP_TIME("inter_chunk_backward", q.device());
  // dq and d_kv_in are accumulated.
  count_traffic(OpKind::Attention, {&q, &kv_in, &d_o, &dq, &d_kv_in}, {&dq, &d_kv_in});
  count_attention_width(q.dim(-1));
  if (q.is_meta()) {
    const StateDims d = chunk_dims("inter_chunk_backward", q, d_o, kv_in, slopes);
    plan_only(q, inter_chunk_backward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  if (q.device() == Device::CUDA) {
    const char* op = "inter_chunk_backward";
    [[maybe_unused]] const bool bf16 =
        check_chunk_on_gpu(op, q, d_o, {{"kv_in", &kv_in}, {"d_kv_in", &d_kv_in}});
    cuda_operands(op, {&q, &dq});
    const StateDims d = chunk_dims(op, q, d_o, kv_in, slopes);
    check_shape(op, "d_o", d_o, {d.batch, d.heads, d.length, d.dv});
    check_shape(op, "dq", dq, q.shape());
    check_shape(op, "d_kv_in", d_kv_in, kv_in.shape());
    LINPAR_CUDA_OR_FAIL(op, cuda::inter_chunk_backward(gpu_dims(op, d), slopes.data(), bf16,
                                                       q.raw_data(), kv_in.device_data<float>(),
                                                       d_o.raw_data(), dq.raw_data(),
                                                       d_kv_in.device_data<float>()));
    count_flops(inter_chunk_backward_flops(d.batch, d.heads, d.length, d.dk, d.dv));
    return;
  }
  const StateDims d = check_chunk("inter_chunk_backward", q, d_o, kv_in, slopes);
  check_shape("inter_chunk_backward", "d_o", d_o, {d.batch, d.heads, d.length, d.dv});
  check_shape("inter_chunk_backward", "dq", dq, q.shape());
  check_shape("inter_chunk_backward", "d_kv_in", d_kv_in, kv_in.shape());
  LINPAR_DISPATCH_FLOAT(q.dtype(), "inter_chunk_backward", [&]<typename T>() {
    std::vector<T> weighted;
    for (int64_t h = 0; h < d.heads; ++h) {
      const std::vector<T> w = query_weights<T>(slopes[static_cast<size_t>(h)], d.length);
      for (int64_t b = 0; b < d.batch; ++b) {
        const int64_t head = b * d.heads + h;
        const T* state = kv_in.data<T>() + head * d.dk * d.dv;
        const T* grad = d_o.data<T>() + head * d.length * d.dv;
        // dQ += diag(w) dO KV_inᵀ
        weight_rows(grad, w, d.dv, weighted);
        gemm<T>(false, true, d.length, d.dk, d.dv, T(1), weighted.data(), d.dv, state, d.dv, T(1),
                dq.data<T>() + head * d.length * d.dk, d.dk);
        // dKV_in += (diag(w) Q)ᵀ dO
        weight_rows(q.data<T>() + head * d.length * d.dk, w, d.dk, weighted);
        gemm<T>(true, false, d.dk, d.dv, d.length, T(1), weighted.data(), d.dk, grad, d.dv, T(1),
                d_kv_in.data<T>() + head * d.dk * d.dv, d.dv);
      }
    }
  });
}

void state_decay_add(const Tensor& a, const std::vector<double>& slopes, int64_t n, const Tensor& b,
                     Tensor& out) {
  LINPAR_OP_TIME("state_decay_add", a.device());
  count_traffic(OpKind::Attention, {&a, &b}, {&out});
  count_attention_width(a.dim(-2));  // the state [B, H, dk, dv]
  if (plan_only(a, 2 * a.numel())) return;
  if (a.device() == Device::CUDA) {
    const char* op = "state_decay_add";
    check_cuda_f32(op, "a", a);
    check_cuda_f32(op, "b", b);
    check_cuda_f32(op, "out", out);
    LINPAR_CHECK(a.ndim() == 4, "{}: state {}", op, shape_string(a.shape()));
    check_shape(op, "b", b, a.shape());
    check_shape(op, "out", out, a.shape());
    check_slopes(op, slopes, a.dim(1));
    // The per-head factors as the CPU reference rounds them.
    std::vector<float> decays(slopes.size());
    for (size_t h = 0; h < slopes.size(); ++h)
      decays[h] = static_cast<float>(std::exp(-slopes[h] * static_cast<double>(n)));
#ifdef LINPAR_HAVE_CUDA
    LINPAR_CHECK(a.dim(1) <= cuda::kMaxKvStateHeads, "{}: {} heads (at most {})", op, a.dim(1),
                 cuda::kMaxKvStateHeads);
#endif
    LINPAR_CUDA_OR_FAIL(op, cuda::state_decay_add(a.dim(0), a.dim(1), a.dim(2) * a.dim(3),
                                                  decays.data(), a.device_data<float>(),
                                                  b.device_data<float>(),
                                                  out.device_data<float>()));
    count_flops(2 * a.numel());
    return;
  }
  check_cpu_float("state_decay_add", a);
  check_same("state_decay_add", a, b);
  check_same("state_decay_add", a, out);
  LINPAR_CHECK(a.ndim() == 4, "state_decay_add: state {}", shape_string(a.shape()));
  check_shape("state_decay_add", "b", b, a.shape());
  check_shape("state_decay_add", "out", out, a.shape());
  check_slopes("state_decay_add", slopes, a.dim(1));
  const int64_t B = a.dim(0), H = a.dim(1), size = a.dim(2) * a.dim(3);
  LINPAR_DISPATCH_FLOAT(a.dtype(), "state_decay_add", [&]<typename T>() {
    for (int64_t h = 0; h < H; ++h) {
      const T decay = static_cast<T>(std::exp(-slopes[static_cast<size_t>(h)] * static_cast<double>(n)));
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t offset = (bi * H + h) * size;
        const T* x = a.data<T>() + offset;
        const T* y = b.data<T>() + offset;
        T* z = out.data<T>() + offset;
        for (int64_t i = 0; i < size; ++i) z[i] = decay * x[i] + y[i];
      }
    }
  });
  count_flops(2 * a.numel());
}

int64_t chunk_state_forward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                  int64_t dv) {
  return batch * heads * (length * dk + 2 * length * dk * dv);
}

int64_t chunk_state_backward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                   int64_t dv) {
  return batch * heads * (length * dv + length * dk + 4 * length * dk * dv);
}

int64_t inter_chunk_forward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                  int64_t dv) {
  return batch * heads * (length * dk + 2 * length * dk * dv);
}

int64_t inter_chunk_backward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                   int64_t dv) {
  return batch * heads * (length * dv + length * dk + 4 * length * dk * dv);
}

int64_t state_decay_add_flops(int64_t batch, int64_t heads, int64_t dk, int64_t dv) {
  return 2 * batch * heads * dk * dv;
}

}  // namespace linpar
