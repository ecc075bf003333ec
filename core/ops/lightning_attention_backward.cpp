// Backward of lightning attention (see lightning_attention.h for the math).
// Per (batch, head), with Sm = (Q Kᵀ) ⊙ M and dSm = (dO Vᵀ) ⊙ M per block:
//   dQ_t = dSm K_t + Λ dO_t KV_{t−1}ᵀ                       (forward sweep)
//   dK_t = dSmᵀ Q_t + diag(λ^{m−1−j}) V_t G_tᵀ              (backward sweep)
//   dV_t = Smᵀ dO_t + diag(λ^{m−1−j}) K_t G_t
//   G_{t−1} = λ^{m_t} G_t + (Λ Q_t)ᵀ dO_t,  G_last = dKV_out,  dKV_in = G_{−1}
// where G_t is the gradient of the state after block t.
#include <algorithm>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#include "core/ops/lightning_attention.h"

#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/lightning_attention_kernels.h"
#endif
#include "core/ops/lightning_attention_blocks.h"

namespace linpar {

using lightning::DecayTables;

namespace {

template <typename T>
struct Scratch {
  std::vector<T> state, s, ds, scaled, tmp, k_decay;
  Scratch(int64_t b, int64_t dk, int64_t dv)
      : state(static_cast<size_t>(dk * dv)),
        s(static_cast<size_t>(b * b)),
        ds(static_cast<size_t>(b * b)),
        scaled(static_cast<size_t>(b * std::max(dk, dv))),
        tmp(static_cast<size_t>(b * std::max(dk, dv))) {}
};

// dQ: forward over the blocks, recomputing the states KV_{t−1} it needs.
template <typename T>
void dq_sweep(const T* q, const T* k, const T* v, const T* d_o, int64_t n, int64_t dk, int64_t dv,
              const DecayTables<T>& decay, const T* kv_in, T* dq, Scratch<T>& w) {
  const int64_t b = decay.block;
  bool have_state = kv_in != nullptr;
  if (have_state) std::copy(kv_in, kv_in + dk * dv, w.state.begin());
  for (int64_t t0 = 0; t0 < n; t0 += b) {
    const int64_t m = std::min(b, n - t0);
    lightning::masked_product(d_o + t0 * dv, v + t0 * dv, m, dv, decay, w.ds.data());
    gemm<T>(false, false, m, dk, m, T(1), w.ds.data(), m, k + t0 * dk, dk, T(0), dq + t0 * dk, dk);
    if (have_state) {
      lightning::scale_rows(d_o + t0 * dv, decay.q_decay.data(), m, dv, w.scaled.data());
      gemm<T>(false, true, m, dk, dv, T(1), w.scaled.data(), dv, w.state.data(), dv, T(1),
              dq + t0 * dk, dk);
    }
    if (t0 + m < n) {  // the state after this block feeds the next block's queries
      if (have_state) lightning::scale_in_place(w.state.data(), decay.power(m), dk * dv);
      decay.k_decay(m, w.k_decay);
      lightning::scale_rows(k + t0 * dk, w.k_decay.data(), m, dk, w.scaled.data());
      gemm<T>(true, false, dk, dv, m, T(1), w.scaled.data(), dk, v + t0 * dv, dv,
              have_state ? T(1) : T(0), w.state.data(), dv);
      have_state = true;
    }
  }
}

// dK, dV (and dKV_in): backward over the blocks with the state gradient G.
template <typename T>
void dkv_sweep(const T* q, const T* k, const T* v, const T* d_o, int64_t n, int64_t dk, int64_t dv,
               const DecayTables<T>& decay, const T* d_kv_out, T* dk_out, T* dv_out, T* d_kv_in,
               Scratch<T>& w) {
  const int64_t b = decay.block;
  bool have_grad = d_kv_out != nullptr;
  if (have_grad) std::copy(d_kv_out, d_kv_out + dk * dv, w.state.begin());
  const int64_t blocks = (n + b - 1) / b;
  for (int64_t t = blocks - 1; t >= 0; --t) {
    const int64_t t0 = t * b, m = std::min(b, n - t0);
    const T* qb = q + t0 * dk;
    const T* kb = k + t0 * dk;
    const T* vb = v + t0 * dv;
    const T* dob = d_o + t0 * dv;
    lightning::masked_product(qb, kb, m, dk, decay, w.s.data());
    lightning::masked_product(dob, vb, m, dv, decay, w.ds.data());
    gemm<T>(true, false, m, dv, m, T(1), w.s.data(), m, dob, dv, T(0), dv_out + t0 * dv, dv);
    gemm<T>(true, false, m, dk, m, T(1), w.ds.data(), m, qb, dk, T(0), dk_out + t0 * dk, dk);
    if (have_grad) {
      decay.k_decay(m, w.k_decay);
      gemm<T>(false, true, m, dk, dv, T(1), vb, dv, w.state.data(), dv, T(0), w.tmp.data(), dk);
      lightning::add_scaled_rows(w.tmp.data(), w.k_decay.data(), m, dk, dk_out + t0 * dk);
      gemm<T>(false, false, m, dv, dk, T(1), kb, dk, w.state.data(), dv, T(0), w.tmp.data(), dv);
      lightning::add_scaled_rows(w.tmp.data(), w.k_decay.data(), m, dv, dv_out + t0 * dv);
    }
    if (t > 0 || d_kv_in != nullptr) {  // G for the state before this block
      if (have_grad) lightning::scale_in_place(w.state.data(), decay.power(m), dk * dv);
      lightning::scale_rows(qb, decay.q_decay.data(), m, dk, w.scaled.data());
      gemm<T>(true, false, dk, dv, m, T(1), w.scaled.data(), dk, dob, dv, have_grad ? T(1) : T(0),
              w.state.data(), dv);
      have_grad = true;
    }
  }
  if (d_kv_in != nullptr) {
    if (have_grad)
      std::copy(w.state.begin(), w.state.end(), d_kv_in);
    else
      std::fill(d_kv_in, d_kv_in + dk * dv, T(0));
  }
}

}  // namespace

namespace {
// CUDA tensors: bf16 or f32 operands, f32 states (core/cuda/lightning_attention_kernels.h: bf16
// runs the tensor-core kernels where the head dims allow).
// FLOPs are counted as the block-wise algorithm of `block_size` defines them.
void backward_on_gpu(const Tensor& q, const Tensor& k, const Tensor& v,
                     const std::vector<double>& slopes, int64_t block_size, const Tensor& kv_in,
                     const Tensor& d_o, const Tensor& d_kv_out, Tensor& dq, Tensor& dk, Tensor& dv,
                     Tensor& d_kv_in) {
  const char* op = "lightning_attention_backward (cuda)";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&q, &k, &v, &d_o, &dq, &dk, &dv}) {
    LINPAR_CHECK(t->device() == Device::CUDA && t->dtype() == q.dtype() &&
                     (q.dtype() == DType::F32 || q.dtype() == DType::BF16),
                 "{}: operands must be CUDA f32 or bf16 alike", op);
  }
  LINPAR_CHECK(q.ndim() == 4, "{}: q {}", op, shape_string(q.shape()));
  const int64_t B = q.dim(0), H = q.dim(1), N = q.dim(2), dkh = q.dim(3), dvh = v.dim(3);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&k, &dq, &dk}) check_shape(op, "q-shaped", *t, {B, H, N, dkh});
  for (const Tensor* t : std::initializer_list<const Tensor*>{&v, &d_o, &dv}) check_shape(op, "v-shaped", *t, {B, H, N, dvh});
  LINPAR_CHECK(static_cast<int64_t>(slopes.size()) == H, "{}: {} slopes for {} heads", op,
               slopes.size(), H);
  for (const Tensor* state : std::initializer_list<const Tensor*>{&kv_in, &d_kv_out, &d_kv_in}) {
    if (!state->defined()) continue;
    LINPAR_CHECK(state->device() == Device::CUDA && state->dtype() == DType::F32,
                 "{}: states are CUDA f32 tensors", op);
    check_shape(op, "state", *state, {B, H, dkh, dvh});
  }
#ifdef LINPAR_HAVE_CUDA
  LINPAR_CHECK(H <= cuda::kMaxAttentionHeads, "{}: {} heads (at most {})", op, H,
               cuda::kMaxAttentionHeads);
  auto f32 = [](const Tensor& t) { return t.defined() ? t.device_data<float>() : nullptr; };
  const cuda::AttentionDims dims{B, H, N, dkh, dvh};
  const bool bf16 = q.dtype() == DType::BF16;
  // The tensor-core path's per-chunk states (see forward_on_gpu).
  const size_t workspace_bytes = cuda::lightning_backward_workspace_bytes(dims, bf16);
  const Tensor workspace = workspace_bytes > 0
                               ? Tensor::empty({static_cast<int64_t>((workspace_bytes + 3) / 4)},
                                               DType::F32, Device::CUDA)
                               : Tensor();
  cuda::lightning_backward(dims, slopes.data(), bf16, q.raw_data(), k.raw_data(), v.raw_data(),
                           f32(kv_in), d_o.raw_data(), f32(d_kv_out), dq.raw_data(), dk.raw_data(),
                           dv.raw_data(), f32(d_kv_in),
                           workspace.defined() ? workspace.raw_data() : nullptr);
  count_flops(lightning_attention_backward_flops(B, H, N, dkh, dvh, block_size, kv_in.defined(),
                                                 d_kv_out.defined(), d_kv_in.defined()));
#else
  user_error("--device cuda: this linpar was built without CUDA");
#endif
}
}  // namespace

void lightning_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const std::vector<double>& slopes, int64_t block_size,
                                  const Tensor& kv_in, const Tensor& d_o, const Tensor& d_kv_out,
                                  Tensor& dq, Tensor& dk, Tensor& dv, Tensor& d_kv_in) {
  LINPAR_OP_TIME("lightning_attention_backward", q.device());
  count_traffic(OpKind::Attention, {&q, &k, &v, &kv_in, &d_o, &d_kv_out},
                {&dq, &dk, &dv, &d_kv_in});
  count_attention_width(q.dim(-1));
  if (plan_only(q, lightning_attention_backward_flops(q.dim(0), q.dim(1), q.dim(2), q.dim(3),
                                                      v.dim(3), block_size, kv_in.defined(),
                                                      d_kv_out.defined(), d_kv_in.defined()))) {
    return;
  }
  if (q.device() == Device::CUDA) {
    backward_on_gpu(q, k, v, slopes, block_size, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in);
    return;
  }
  const char* op = "lightning_attention_backward";
  const auto d = lightning::check_dims(op, q, k, v, slopes, block_size, kv_in);
  check_shape(op, "d_o", d_o, {d.batch, d.heads, d.length, d.dv});
  check_shape(op, "dq", dq, q.shape());
  check_shape(op, "dk", dk, k.shape());
  check_shape(op, "dv", dv, v.shape());
  if (d_kv_out.defined()) check_shape(op, "d_kv_out", d_kv_out, {d.batch, d.heads, d.dk, d.dv});
  if (d_kv_in.defined()) check_shape(op, "d_kv_in", d_kv_in, {d.batch, d.heads, d.dk, d.dv});
  const int64_t b = std::max<int64_t>(1, std::min(block_size, d.length));
  LINPAR_DISPATCH_FLOAT(q.dtype(), op, [&]<typename T>() {
    Scratch<T> work(b, d.dk, d.dv);
    for (int64_t h = 0; h < d.heads; ++h) {
      const DecayTables<T> decay(slopes[static_cast<size_t>(h)], b);
      for (int64_t bi = 0; bi < d.batch; ++bi) {
        const int64_t head = bi * d.heads + h;
        const int64_t qk_offset = head * d.length * d.dk, v_offset = head * d.length * d.dv,
                      state_offset = head * d.dk * d.dv;
        dq_sweep<T>(q.data<T>() + qk_offset, k.data<T>() + qk_offset, v.data<T>() + v_offset,
                    d_o.data<T>() + v_offset, d.length, d.dk, d.dv, decay,
                    kv_in.defined() ? kv_in.data<T>() + state_offset : nullptr,
                    dq.data<T>() + qk_offset, work);
        dkv_sweep<T>(q.data<T>() + qk_offset, k.data<T>() + qk_offset, v.data<T>() + v_offset,
                     d_o.data<T>() + v_offset, d.length, d.dk, d.dv, decay,
                     d_kv_out.defined() ? d_kv_out.data<T>() + state_offset : nullptr,
                     dk.data<T>() + qk_offset, dv.data<T>() + v_offset,
                     d_kv_in.defined() ? d_kv_in.data<T>() + state_offset : nullptr, work);
      }
    }
  });
}

int64_t lightning_attention_backward_flops(int64_t batch, int64_t heads, int64_t length, int64_t dk,
                                           int64_t dv, int64_t block_size, bool has_kv_in,
                                           bool has_d_kv_out, bool want_d_kv_in) {
  const int64_t b = std::max<int64_t>(1, std::min(block_size, length));
  int64_t flops = 0;
  // dQ sweep.
  bool have_state = has_kv_in;
  for (int64_t t0 = 0; t0 < length; t0 += b) {
    const int64_t m = std::min(b, length - t0);
    flops += lightning::masked_product_flops(m, dv) + 2 * m * m * dk;
    if (have_state) flops += m * dv + 2 * m * dv * dk;
    if (t0 + m < length) {
      if (have_state) flops += dk * dv;
      flops += m * dk + 2 * m * dk * dv;
      have_state = true;
    }
  }
  // dK/dV sweep.
  bool have_grad = has_d_kv_out;
  const int64_t blocks = (length + b - 1) / b;
  for (int64_t t = blocks - 1; t >= 0; --t) {
    const int64_t m = std::min(b, length - t * b);
    flops += lightning::masked_product_flops(m, dk) + lightning::masked_product_flops(m, dv);
    flops += 2 * m * m * dv + 2 * m * m * dk;
    if (have_grad) flops += 2 * m * dv * dk + 2 * m * dk + 2 * m * dk * dv + 2 * m * dv;
    if (t > 0 || want_d_kv_in) {
      if (have_grad) flops += dk * dv;
      flops += m * dk + 2 * m * dk * dv;
      have_grad = true;
    }
  }
  return batch * heads * flops;
}

}  // namespace linpar
