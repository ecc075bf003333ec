#include "core/ops/lightning_attention.h"

#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/lightning_attention_kernels.h"
#endif

#include <algorithm>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#include "core/ops/lightning_attention_blocks.h"

namespace linpar {

using lightning::DecayTables;

namespace lightning {

Dims check_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                const std::vector<double>& slopes, int64_t block_size, const Tensor& kv_in) {
  check_cpu_float(op, q);
  check_same(op, q, k);
  check_same(op, q, v);
  LINPAR_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4, "{}: q {} k {} v {}", op,
               shape_string(q.shape()), shape_string(k.shape()), shape_string(v.shape()));
  Dims d{q.dim(0), q.dim(1), q.dim(2), q.dim(3), v.dim(3)};
  check_shape(op, "k", k, {d.batch, d.heads, d.length, d.dk});
  check_shape(op, "v", v, {d.batch, d.heads, d.length, d.dv});
  LINPAR_CHECK(static_cast<int64_t>(slopes.size()) == d.heads, "{}: {} slopes for {} heads", op,
               slopes.size(), d.heads);
  LINPAR_CHECK(block_size > 0, "{}: block size {}", op, block_size);
  if (kv_in.defined()) check_shape(op, "kv_in", kv_in, {d.batch, d.heads, d.dk, d.dv});
  return d;
}

}  // namespace lightning

namespace {

// One (batch, head): the forward recurrence over blocks of the chunk.
template <typename T>
void forward_head(const T* q, const T* k, const T* v, int64_t n, int64_t dk, int64_t dv,
                  const DecayTables<T>& decay, const T* kv_in, T* o, T* kv_out, std::vector<T>& kv,
                  std::vector<T>& s, std::vector<T>& scaled, std::vector<T>& k_decay) {
  const int64_t b = decay.block;
  bool have_state = kv_in != nullptr;
  if (have_state) std::copy(kv_in, kv_in + dk * dv, kv.begin());
  for (int64_t t0 = 0; t0 < n; t0 += b) {
    const int64_t m = std::min(b, n - t0);
    const T* qb = q + t0 * dk;
    const T* kb = k + t0 * dk;
    const T* vb = v + t0 * dv;
    T* ob = o + t0 * dv;
    // O_intra = ((Q Kᵀ) ⊙ M) V
    lightning::masked_product(qb, kb, m, dk, decay, s.data());
    gemm<T>(false, false, m, dv, m, T(1), s.data(), m, vb, dv, T(0), ob, dv);
    // O_inter = Λ Q KV_{t−1}
    if (have_state) {
      lightning::scale_rows(qb, decay.q_decay.data(), m, dk, scaled.data());
      gemm<T>(false, false, m, dv, dk, T(1), scaled.data(), dk, kv.data(), dv, T(1), ob, dv);
    }
    // KV_t = λ^m KV_{t−1} + (diag(λ^{m−1..0}) K)ᵀ V
    const bool last = t0 + m >= n;
    if (!last || kv_out != nullptr) {
      if (have_state) lightning::scale_in_place(kv.data(), decay.power(m), dk * dv);
      decay.k_decay(m, k_decay);
      lightning::scale_rows(kb, k_decay.data(), m, dk, scaled.data());
      gemm<T>(true, false, dk, dv, m, T(1), scaled.data(), dk, vb, dv, have_state ? T(1) : T(0),
              kv.data(), dv);
      have_state = true;
    }
  }
  if (kv_out != nullptr) {
    if (have_state)
      std::copy(kv.begin(), kv.end(), kv_out);
    else
      std::fill(kv_out, kv_out + dk * dv, T(0));  // N = 0 and no KV_in
  }
}

}  // namespace

namespace {
// CUDA tensors: bf16 or f32 q, k, v, o; the state f32 (core/cuda/lightning_attention_kernels.h:
// bf16 runs the tensor-core kernels where the head dims allow).
// FLOPs are counted as the block-wise algorithm of `block_size` defines them
// (the op plan's figure), whatever tiling the kernel uses.
void forward_on_gpu(const Tensor& q, const Tensor& k, const Tensor& v,
                    const std::vector<double>& slopes, int64_t block_size, const Tensor& kv_in,
                    Tensor& o, Tensor& kv_out) {
  const char* op = "lightning_attention_forward (cuda)";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&q, &k, &v, &o}) {
    LINPAR_CHECK(t->device() == Device::CUDA && t->dtype() == q.dtype() &&
                     (q.dtype() == DType::F32 || q.dtype() == DType::BF16),
                 "{}: operands must be CUDA f32 or bf16 alike", op);
  }
  LINPAR_CHECK(q.ndim() == 4, "{}: q {}", op, shape_string(q.shape()));
  const int64_t B = q.dim(0), H = q.dim(1), N = q.dim(2), dk = q.dim(3), dv = v.dim(3);
  check_shape(op, "k", k, {B, H, N, dk});
  check_shape(op, "v", v, {B, H, N, dv});
  check_shape(op, "o", o, {B, H, N, dv});
  LINPAR_CHECK(static_cast<int64_t>(slopes.size()) == H, "{}: {} slopes for {} heads", op,
               slopes.size(), H);
  for (const Tensor* state : std::initializer_list<const Tensor*>{&kv_in, &kv_out}) {
    if (!state->defined()) continue;
    LINPAR_CHECK(state->device() == Device::CUDA && state->dtype() == DType::F32,
                 "{}: the state is a CUDA f32 tensor", op);
    check_shape(op, "state", *state, {B, H, dk, dv});
  }
#ifdef LINPAR_HAVE_CUDA
  LINPAR_CHECK(H <= cuda::kMaxAttentionHeads, "{}: {} heads (at most {})", op, H,
               cuda::kMaxAttentionHeads);
  const cuda::AttentionDims dims{B, H, N, dk, dv};
  const bool bf16 = q.dtype() == DType::BF16;
  // The tensor-core path's per-chunk states (none for the CUDA-core kernels);
  // freed here while the kernels may still run: the caching allocator hands it
  // out again only to work queued behind them on the same stream.
  const size_t workspace_bytes = cuda::lightning_forward_workspace_bytes(dims, bf16);
  const Tensor workspace = workspace_bytes > 0
                               ? Tensor::empty({static_cast<int64_t>((workspace_bytes + 3) / 4)},
                                               DType::F32, Device::CUDA)
                               : Tensor();
  cuda::lightning_forward(dims, slopes.data(), bf16, q.raw_data(), k.raw_data(), v.raw_data(),
                          kv_in.defined() ? kv_in.device_data<float>() : nullptr, o.raw_data(),
                          kv_out.defined() ? kv_out.device_data<float>() : nullptr,
                          workspace.defined() ? workspace.raw_data() : nullptr);
  count_flops(lightning_attention_forward_flops(B, H, N, dk, dv, block_size, kv_in.defined(),
                                                kv_out.defined()));
#else
  user_error("--device cuda: this linpar was built without CUDA");
#endif
}
}  // namespace

void lightning_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const std::vector<double>& slopes, int64_t block_size,
                                 const Tensor& kv_in, Tensor& o, Tensor& kv_out) {
  LINPAR_OP_TIME("lightning_attention_forward", q.device());
  count_traffic(OpKind::Attention, {&q, &k, &v, &kv_in}, {&o, &kv_out});
  count_attention_width(q.dim(-1));
  if (plan_only(q,
                lightning_attention_forward_flops(q.dim(0), q.dim(1), q.dim(2), q.dim(3), v.dim(3),
                                                  block_size, kv_in.defined(), kv_out.defined()))) {
    return;
  }
  if (q.device() == Device::CUDA) {
    forward_on_gpu(q, k, v, slopes, block_size, kv_in, o, kv_out);
    return;
  }
  const auto d =
      lightning::check_dims("lightning_attention_forward", q, k, v, slopes, block_size, kv_in);
  check_shape("lightning_attention_forward", "o", o, {d.batch, d.heads, d.length, d.dv});
  if (kv_out.defined())
    check_shape("lightning_attention_forward", "kv_out", kv_out, {d.batch, d.heads, d.dk, d.dv});
  const int64_t b = std::max<int64_t>(1, std::min(block_size, d.length));
  LINPAR_DISPATCH_FLOAT(q.dtype(), "lightning_attention_forward", [&]<typename T>() {
    std::vector<T> kv(static_cast<size_t>(d.dk * d.dv)), s(static_cast<size_t>(b * b)),
        scaled(static_cast<size_t>(b * d.dk)), k_decay;
    for (int64_t h = 0; h < d.heads; ++h) {
      const DecayTables<T> decay(slopes[static_cast<size_t>(h)], b);
      for (int64_t bi = 0; bi < d.batch; ++bi) {
        const int64_t head = bi * d.heads + h;
        forward_head<T>(q.data<T>() + head * d.length * d.dk, k.data<T>() + head * d.length * d.dk,
                        v.data<T>() + head * d.length * d.dv, d.length, d.dk, d.dv, decay,
                        kv_in.defined() ? kv_in.data<T>() + head * d.dk * d.dv : nullptr,
                        o.data<T>() + head * d.length * d.dv,
                        kv_out.defined() ? kv_out.data<T>() + head * d.dk * d.dv : nullptr, kv, s,
                        scaled, k_decay);
      }
    }
  });
}

int64_t lightning_attention_forward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                          int64_t dv, int64_t block_size, bool has_kv_in,
                                          bool want_kv_out) {
  const int64_t b = std::max<int64_t>(1, std::min(block_size, length));
  int64_t flops = 0;
  bool have_state = has_kv_in;
  for (int64_t t0 = 0; t0 < length; t0 += b) {
    const int64_t m = std::min(b, length - t0);
    flops += lightning::masked_product_flops(m, dk) + 2 * m * m * dv;
    if (have_state) flops += m * dk + 2 * m * dk * dv;
    if (t0 + m < length || want_kv_out) {
      if (have_state) flops += dk * dv;
      flops += m * dk + 2 * m * dk * dv;
      have_state = true;
    }
  }
  return batch * heads * flops;
}

void linear_attention_reference_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const std::vector<double>& slopes, const Tensor& kv_in,
                                        Tensor& o, Tensor& kv_out) {
  const auto d =
      lightning::check_dims("linear_attention_reference_forward", q, k, v, slopes, 1, kv_in);
  LINPAR_DISPATCH_FLOAT(q.dtype(), "linear_attention_reference_forward", [&]<typename T>() {
    for (int64_t bh = 0; bh < d.batch * d.heads; ++bh) {
      const double s = slopes[static_cast<size_t>(bh % d.heads)];
      const T* qh = q.data<T>() + bh * d.length * d.dk;
      const T* kh = k.data<T>() + bh * d.length * d.dk;
      const T* vh = v.data<T>() + bh * d.length * d.dv;
      const T* state = kv_in.defined() ? kv_in.data<T>() + bh * d.dk * d.dv : nullptr;
      T* oh = o.data<T>() + bh * d.length * d.dv;
      for (int64_t t = 0; t < d.length; ++t) {
        for (int64_t c = 0; c < d.dv; ++c) {
          double acc = 0;
          for (int64_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < d.dk; ++e)
              dot += static_cast<double>(qh[t * d.dk + e]) * kh[j * d.dk + e];
            acc += std::exp(-s * static_cast<double>(t - j)) * dot * vh[j * d.dv + c];
          }
          if (state != nullptr) {
            double inter = 0;
            for (int64_t e = 0; e < d.dk; ++e)
              inter += static_cast<double>(qh[t * d.dk + e]) * state[e * d.dv + c];
            acc += std::exp(-s * static_cast<double>(t + 1)) * inter;
          }
          oh[t * d.dv + c] = static_cast<T>(acc);
        }
      }
      if (kv_out.defined()) {
        T* out = kv_out.data<T>() + bh * d.dk * d.dv;
        for (int64_t e = 0; e < d.dk; ++e) {
          for (int64_t c = 0; c < d.dv; ++c) {
            double acc = state != nullptr
                             ? std::exp(-s * static_cast<double>(d.length)) * state[e * d.dv + c]
                             : 0.0;
            for (int64_t j = 0; j < d.length; ++j) {
              acc += std::exp(-s * static_cast<double>(d.length - 1 - j)) * kh[j * d.dk + e] *
                     vh[j * d.dv + c];
            }
            out[e * d.dv + c] = static_cast<T>(acc);
          }
        }
      }
    }
  });
}

}  // namespace linpar
