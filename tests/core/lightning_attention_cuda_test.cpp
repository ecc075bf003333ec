// The CUDA lightning-attention forward against the CPU reference on fresh
// random inputs: outputs and the state out, with and without a state in,
// lengths that are not multiples of any block, decays near 0 and near 1, f32
// (1e-5) and bf16 operands (1e-2), every output written (poisoned with NaN
// first). Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/lightning_attention.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

TEST(LightningAttentionCuda, ForwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  struct Case {
    int64_t batch, heads, length, dk, dv;
    double slope;
  };
  uint64_t seed = 7;
  for (const Case c : {Case{2, 3, 45, 16, 24, 0.3}, Case{1, 2, 130, 64, 64, 8.0},
                       Case{1, 4, 77, 128, 128, 1e-6}, Case{2, 1, 5, 256, 40, 0.05}}) {
    std::vector<double> slopes;
    for (int64_t h = 0; h < c.heads; ++h) slopes.push_back(c.slope * std::pow(0.5, static_cast<double>(h)));
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool with_state : {false, true}) {
        auto input = [&](const Shape& s, double std) {
          return random_tensor(s, seed++, std, DType::F32).to(dtype).to(DType::F32);  // GPU-representable
        };
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
        const Tensor q = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor k = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor v = input({c.batch, c.heads, c.length, c.dv}, 1.0);
        const Tensor kv_in = with_state ? random_tensor({c.batch, c.heads, c.dk, c.dv}, seed++, 1.0, DType::F32) : Tensor();
        Tensor o = Tensor::empty(v.shape(), DType::F32), kv_out = Tensor::empty({c.batch, c.heads, c.dk, c.dv}, DType::F32);
        lightning_attention_forward(q, k, v, slopes, 64, kv_in, o, kv_out);

        Tensor og = poisoned(v.shape(), dtype), kv_out_g = poisoned(kv_out.shape(), DType::F32);
        const Tensor kv_in_g = with_state ? kv_in.to(Device::CUDA) : Tensor();
        lightning_attention_forward(q.to(dtype).to(Device::CUDA), k.to(dtype).to(Device::CUDA),
                                    v.to(dtype).to(Device::CUDA), slopes, 64, kv_in_g, og, kv_out_g);
        const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-2;
        const std::string what = "N " + std::to_string(c.length) + " dk " + std::to_string(c.dk) +
                                 " slope " + std::to_string(c.slope) + " " + std::string(dtype_name(dtype)) +
                                 (with_state ? " with state" : "");
        EXPECT_LT(relative_error(og, o), tolerance) << "o " << what;
        EXPECT_LT(relative_error(kv_out_g, kv_out), tolerance) << "kv_out " << what;
      }
    }
  }
}

// Backward: dQ, dK, dV and the state gradient in, with and without a state in
// and a state gradient out, against the CPU reference.
TEST(LightningAttentionCuda, BackwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  struct Case {
    int64_t batch, heads, length, dk, dv;
    double slope;
  };
  uint64_t seed = 70;
  for (const Case c : {Case{2, 3, 45, 16, 24, 0.3}, Case{1, 2, 130, 64, 64, 8.0},
                       Case{1, 2, 77, 128, 128, 1e-6}, Case{1, 1, 21, 256, 128, 0.05}}) {
    std::vector<double> slopes;
    for (int64_t h = 0; h < c.heads; ++h) slopes.push_back(c.slope * std::pow(0.5, static_cast<double>(h)));
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool with_state : {false, true}) {
        auto input = [&](const Shape& s, double std) {
          return random_tensor(s, seed++, std, DType::F32).to(dtype).to(DType::F32);
        };
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
        const Tensor q = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor k = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor v = input({c.batch, c.heads, c.length, c.dv}, 1.0);
        const Tensor d_o = input({c.batch, c.heads, c.length, c.dv}, 1.0);
        const Shape state_shape{c.batch, c.heads, c.dk, c.dv};
        const Tensor kv_in = with_state ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        const Tensor d_kv_out = with_state ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
               dv = Tensor::empty(v.shape(), DType::F32);
        Tensor d_kv_in = with_state ? Tensor::empty(state_shape, DType::F32) : Tensor();
        lightning_attention_backward(q, k, v, slopes, 64, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in);

        auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
        Tensor dqg = poisoned(q.shape(), dtype), dkg = poisoned(k.shape(), dtype),
               dvg = poisoned(v.shape(), dtype);
        Tensor d_kv_in_g = with_state ? poisoned(state_shape, DType::F32) : Tensor();
        lightning_attention_backward(gpu(q), gpu(k), gpu(v), slopes, 64,
                                     with_state ? kv_in.to(Device::CUDA) : Tensor(), gpu(d_o),
                                     with_state ? d_kv_out.to(Device::CUDA) : Tensor(), dqg, dkg,
                                     dvg, d_kv_in_g);
        const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-2;
        const std::string what = "N " + std::to_string(c.length) + " dk " + std::to_string(c.dk) +
                                 " slope " + std::to_string(c.slope) + " " + std::string(dtype_name(dtype)) +
                                 (with_state ? " with state" : "");
        EXPECT_LT(relative_error(dqg, dq), tolerance) << "dq " << what;
        EXPECT_LT(relative_error(dkg, dk), tolerance) << "dk " << what;
        EXPECT_LT(relative_error(dvg, dv), tolerance) << "dv " << what;
        if (with_state) EXPECT_LT(relative_error(d_kv_in_g, d_kv_in), tolerance) << "d_kv_in " << what;
      }
    }
  }
}

}  // namespace linpar
