// The chunk-joining pieces of core/ops/kv_state.h recombine exactly into
// lightning attention with a state entering the chunk (values and all
// gradients), for decays near 0 and near 1; their FLOP formulas equal what ran.
#include "core/ops/kv_state.h"

#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "core/ops/lightning_attention.h"
#include "gradcheck.h"
#include "kv_state_flops.h"

namespace linpar {

using testing::random_tensor;

namespace {

double max_difference(const Tensor& a, const Tensor& b) {
  double worst = 0, scale = 1e-300;
  for (int64_t i = 0; i < a.numel(); ++i) scale = std::max(scale, std::abs(a.data<double>()[i]));
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(a.data<double>()[i] - b.data<double>()[i]));
  return worst / scale;
}

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), DType::F64); }

}  // namespace

// o = intra + inter, KV_out = λ^C KV_in + S; backward: intra with no state,
// then the state terms: dQ += inter, dK/dV += chunk_state_backward(dKV_out),
// dKV_in = λ^C dKV_out + Σ λ^{t+1} q_tᵀ dO_t.
TEST(KvState, PiecesEqualLightningAttentionWithAState) {
  const int64_t B = 2, H = 3, C = 13, dk = 6, dv = 4, block = 4;
  for (double slope : {1e-7, 0.05, 3.0}) {
    const std::vector<double> slopes = {slope, slope * 0.5, slope * 2};
    Tensor q = random_tensor({B, H, C, dk}, 1), k = random_tensor({B, H, C, dk}, 2),
           v = random_tensor({B, H, C, dv}, 3), kv_in = random_tensor({B, H, dk, dv}, 4),
           d_o = random_tensor({B, H, C, dv}, 5), d_kv_out = random_tensor({B, H, dk, dv}, 6);
    Tensor o = zeros_like(v), kv_out = zeros_like(kv_in);
    lightning_attention_forward(q, k, v, slopes, block, kv_in, o, kv_out);
    Tensor dq = zeros_like(q), dk_ = zeros_like(k), dv_ = zeros_like(v), d_kv_in = zeros_like(kv_in);
    lightning_attention_backward(q, k, v, slopes, block, kv_in, d_o, d_kv_out, dq, dk_, dv_,
                                 d_kv_in);

    Tensor none, p_o = zeros_like(v), s = zeros_like(kv_in), s2 = zeros_like(kv_in);
    lightning_attention_forward(q, k, v, slopes, block, none, p_o, s);
    chunk_state_forward(k, v, slopes, s2);
    EXPECT_LT(max_difference(s, s2), 1e-13) << slope;
    inter_chunk_forward(q, slopes, kv_in, p_o);
    Tensor p_kv_out = zeros_like(kv_in);
    state_decay_add(kv_in, slopes, C, s, p_kv_out);
    EXPECT_LT(max_difference(o, p_o), 1e-13) << slope;
    EXPECT_LT(max_difference(kv_out, p_kv_out), 1e-13) << slope;

    Tensor p_dq = zeros_like(q), p_dk = zeros_like(k), p_dv = zeros_like(v),
           local = zeros_like(kv_in), p_d_kv_in = zeros_like(kv_in);
    lightning_attention_backward(q, k, v, slopes, block, none, d_o, none, p_dq, p_dk, p_dv, none);
    inter_chunk_backward(q, slopes, kv_in, d_o, p_dq, local);
    chunk_state_backward(k, v, slopes, d_kv_out, p_dk, p_dv);
    state_decay_add(d_kv_out, slopes, C, local, p_d_kv_in);
    EXPECT_LT(max_difference(dq, p_dq), 1e-12) << slope;
    EXPECT_LT(max_difference(dk_, p_dk), 1e-12) << slope;
    EXPECT_LT(max_difference(dv_, p_dv), 1e-12) << slope;
    EXPECT_LT(max_difference(d_kv_in, p_d_kv_in), 1e-12) << slope;
  }
}

TEST(KvState, CountedFlopsEqualTheFormulas) {
  testing::expect_kv_state_flops(DType::F64, Device::CPU);
}

}  // namespace linpar
