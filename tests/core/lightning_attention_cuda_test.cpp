// The CUDA lightning-attention forward against the CPU reference on fresh
// random inputs: outputs and the state out, with and without a state in,
// lengths that are not multiples of any block, decays near 0 and near 1, f32
// (1e-5) and bf16 operands (1e-2), every output written (poisoned with NaN
// first). Skips without a GPU. The bf16 cases whose head dims are multiples of
// 16 take the tensor-core kernels (lightning_attention_fast.cu), the others and
// f32 the CUDA-core ones; TensorCorePath* below sweep the tensor-core path.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/lightning_attention_kernels.h"
#endif
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
    for (int64_t h = 0; h < c.heads; ++h)
      slopes.push_back(c.slope * std::pow(0.5, static_cast<double>(h)));
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool with_state : {false, true}) {
        auto input = [&](const Shape& s, double std) {
          return random_tensor(s, seed++, std, DType::F32)
              .to(dtype)
              .to(DType::F32);  // GPU-representable
        };
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
        const Tensor q = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor k = input({c.batch, c.heads, c.length, c.dk}, scale);
        const Tensor v = input({c.batch, c.heads, c.length, c.dv}, 1.0);
        const Tensor kv_in =
            with_state ? random_tensor({c.batch, c.heads, c.dk, c.dv}, seed++, 1.0, DType::F32)
                       : Tensor();
        Tensor o = Tensor::empty(v.shape(), DType::F32),
               kv_out = Tensor::empty({c.batch, c.heads, c.dk, c.dv}, DType::F32);
        lightning_attention_forward(q, k, v, slopes, 64, kv_in, o, kv_out);

        Tensor og = poisoned(v.shape(), dtype), kv_out_g = poisoned(kv_out.shape(), DType::F32);
        const Tensor kv_in_g = with_state ? kv_in.to(Device::CUDA) : Tensor();
        lightning_attention_forward(q.to(dtype).to(Device::CUDA), k.to(dtype).to(Device::CUDA),
                                    v.to(dtype).to(Device::CUDA), slopes, 64, kv_in_g, og,
                                    kv_out_g);
        const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-2;
        const std::string what = "N " + std::to_string(c.length) + " dk " + std::to_string(c.dk) +
                                 " slope " + std::to_string(c.slope) + " " +
                                 std::string(dtype_name(dtype)) + (with_state ? " with state" : "");
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
    for (int64_t h = 0; h < c.heads; ++h)
      slopes.push_back(c.slope * std::pow(0.5, static_cast<double>(h)));
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
        const Tensor kv_in =
            with_state ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        const Tensor d_kv_out =
            with_state ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
               dv = Tensor::empty(v.shape(), DType::F32);
        Tensor d_kv_in = with_state ? Tensor::empty(state_shape, DType::F32) : Tensor();
        lightning_attention_backward(q, k, v, slopes, 64, kv_in, d_o, d_kv_out, dq, dk, dv,
                                     d_kv_in);

        auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
        Tensor dqg = poisoned(q.shape(), dtype), dkg = poisoned(k.shape(), dtype),
               dvg = poisoned(v.shape(), dtype);
        Tensor d_kv_in_g = with_state ? poisoned(state_shape, DType::F32) : Tensor();
        lightning_attention_backward(
            gpu(q), gpu(k), gpu(v), slopes, 64, with_state ? kv_in.to(Device::CUDA) : Tensor(),
            gpu(d_o), with_state ? d_kv_out.to(Device::CUDA) : Tensor(), dqg, dkg, dvg, d_kv_in_g);
        const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-2;
        const std::string what = "N " + std::to_string(c.length) + " dk " + std::to_string(c.dk) +
                                 " slope " + std::to_string(c.slope) + " " +
                                 std::string(dtype_name(dtype)) + (with_state ? " with state" : "");
        EXPECT_LT(relative_error(dqg, dq), tolerance) << "dq " << what;
        EXPECT_LT(relative_error(dkg, dk), tolerance) << "dk " << what;
        EXPECT_LT(relative_error(dvg, dv), tolerance) << "dv " << what;
        if (with_state)
          EXPECT_LT(relative_error(d_kv_in_g, d_kv_in), tolerance) << "d_kv_in " << what;
      }
    }
  }
}

// The tensor-core path (bf16, head dims multiples of 16) over the lengths
// around its 64-token sub-blocks (1, 63, 64, 65, 200, 1000), head dims 64,
// 128, 256 (256 × 128: the LRPE layers), batch 2, heads with slopes large (8),
// near 0 (1e-6) and in between, and every combination of the states in and
// out: forward and backward against the CPU reference, bf16 tolerance.
namespace {

struct TensorCoreCase {
  int64_t length, dk, dv;
};

std::vector<TensorCoreCase> tensor_core_cases() {
  std::vector<TensorCoreCase> cases;
  for (int64_t length : {1, 63, 64, 65, 200, 1000}) {
    for (auto [dk, dv] : {std::pair<int64_t, int64_t>{64, 64}, {128, 128}, {256, 128}}) {
      cases.push_back({length, dk, dv});
    }
  }
  cases.push_back({130, 64, 256});  // d_v > d_k: four 64-column tiles of the output
  cases.push_back({100, 48, 80});   // head dims that fill 64-column tiles partly
  return cases;
}

// Which states a run passes: forward (kv_in, kv_out), backward (kv_in,
// d_kv_out, d_kv_in), cycling so that each appears with and without the others.
struct StateFlags {
  bool kv_in, kv_out, d_kv_out, d_kv_in;
};
constexpr StateFlags kStatePatterns[] = {{false, false, false, false},
                                         {true, true, true, true},
                                         {true, false, true, false},
                                         {false, true, false, true}};

std::vector<double> tensor_core_slopes() { return {8.0, 1e-6, 0.3}; }

std::string describe(const TensorCoreCase& c, const StateFlags& f) {
  return "N " + std::to_string(c.length) + " dk " + std::to_string(c.dk) + " dv " +
         std::to_string(c.dv) + (f.kv_in ? " kv_in" : "") + (f.kv_out ? " kv_out" : "") +
         (f.d_kv_out ? " d_kv_out" : "") + (f.d_kv_in ? " d_kv_in" : "");
}

}  // namespace

TEST(LightningAttentionCuda, TensorCorePathForwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t batch = 2;
  const std::vector<double> slopes = tensor_core_slopes();
  const int64_t heads = static_cast<int64_t>(slopes.size());
  uint64_t seed = 700;
  for (const TensorCoreCase& c : tensor_core_cases()) {
#ifdef LINPAR_HAVE_CUDA
    ASSERT_GT(cuda::lightning_forward_workspace_bytes({batch, heads, c.length, c.dk, c.dv}, true),
              0u)
        << "these dims should take the tensor-core path";
#endif
    for (const StateFlags& f : kStatePatterns) {
      auto input = [&](const Shape& s, double std) {
        return random_tensor(s, seed++, std, DType::F32).to(DType::BF16).to(DType::F32);
      };
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
      const Shape state_shape{batch, heads, c.dk, c.dv};
      const Tensor q = input({batch, heads, c.length, c.dk}, scale);
      const Tensor k = input({batch, heads, c.length, c.dk}, scale);
      const Tensor v = input({batch, heads, c.length, c.dv}, 1.0);
      const Tensor kv_in = f.kv_in ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
      Tensor o = Tensor::empty(v.shape(), DType::F32);
      Tensor kv_out = f.kv_out ? Tensor::empty(state_shape, DType::F32) : Tensor();
      lightning_attention_forward(q, k, v, slopes, 64, kv_in, o, kv_out);

      auto gpu = [](const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); };
      Tensor og = poisoned(v.shape(), DType::BF16);
      Tensor kv_out_g = f.kv_out ? poisoned(state_shape, DType::F32) : Tensor();
      lightning_attention_forward(gpu(q), gpu(k), gpu(v), slopes, 64,
                                  f.kv_in ? kv_in.to(Device::CUDA) : Tensor(), og, kv_out_g);
      const std::string what = describe(c, {f.kv_in, f.kv_out, false, false});
      EXPECT_LT(relative_error(og, o), gpu_tolerance(DType::BF16)) << "o " << what;
      if (f.kv_out)
        EXPECT_LT(relative_error(kv_out_g, kv_out), gpu_tolerance(DType::BF16))
            << "kv_out " << what;
    }
  }
}

TEST(LightningAttentionCuda, TensorCorePathBackwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t batch = 2;
  const std::vector<double> slopes = tensor_core_slopes();
  const int64_t heads = static_cast<int64_t>(slopes.size());
  uint64_t seed = 7000;
  for (const TensorCoreCase& c : tensor_core_cases()) {
#ifdef LINPAR_HAVE_CUDA
    ASSERT_GT(cuda::lightning_backward_workspace_bytes({batch, heads, c.length, c.dk, c.dv}, true),
              0u)
        << "these dims should take the tensor-core path";
#endif
    for (const StateFlags& f : kStatePatterns) {
      auto input = [&](const Shape& s, double std) {
        return random_tensor(s, seed++, std, DType::F32).to(DType::BF16).to(DType::F32);
      };
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
      const Shape state_shape{batch, heads, c.dk, c.dv};
      const Tensor q = input({batch, heads, c.length, c.dk}, scale);
      const Tensor k = input({batch, heads, c.length, c.dk}, scale);
      const Tensor v = input({batch, heads, c.length, c.dv}, 1.0);
      const Tensor d_o = input({batch, heads, c.length, c.dv}, 1.0);
      const Tensor kv_in = f.kv_in ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
      const Tensor d_kv_out =
          f.d_kv_out ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
      Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
             dv = Tensor::empty(v.shape(), DType::F32);
      Tensor d_kv_in = f.d_kv_in ? Tensor::empty(state_shape, DType::F32) : Tensor();
      lightning_attention_backward(q, k, v, slopes, 64, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in);

      auto gpu = [](const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); };
      Tensor dqg = poisoned(q.shape(), DType::BF16), dkg = poisoned(k.shape(), DType::BF16),
             dvg = poisoned(v.shape(), DType::BF16);
      Tensor d_kv_in_g = f.d_kv_in ? poisoned(state_shape, DType::F32) : Tensor();
      lightning_attention_backward(
          gpu(q), gpu(k), gpu(v), slopes, 64, f.kv_in ? kv_in.to(Device::CUDA) : Tensor(), gpu(d_o),
          f.d_kv_out ? d_kv_out.to(Device::CUDA) : Tensor(), dqg, dkg, dvg, d_kv_in_g);
      const std::string what = describe(c, {f.kv_in, false, f.d_kv_out, f.d_kv_in});
      const double tolerance = gpu_tolerance(DType::BF16);
      EXPECT_LT(relative_error(dqg, dq), tolerance) << "dq " << what;
      EXPECT_LT(relative_error(dkg, dk), tolerance) << "dk " << what;
      EXPECT_LT(relative_error(dvg, dv), tolerance) << "dv " << what;
      if (f.d_kv_in) EXPECT_LT(relative_error(d_kv_in_g, d_kv_in), tolerance) << "d_kv_in " << what;
    }
  }
}

#ifdef LINPAR_HAVE_CUDA
// The chunks long sequences get (several 64-token sub-blocks walked by one
// CTA, in both directions) at test sizes: the launchers called directly with
// the tokens per chunk set, forward and backward against the CPU reference.
TEST(LightningAttentionCuda, TensorCorePathLongChunksEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t batch = 2;
  const std::vector<double> slopes = tensor_core_slopes();
  const int64_t heads = static_cast<int64_t>(slopes.size());
  uint64_t seed = 70000;
  auto f32 = [](const Tensor& t) { return t.defined() ? t.device_data<float>() : nullptr; };
  auto workspace = [](size_t bytes) {
    return Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32, Device::CUDA);
  };
  for (int64_t chunk_tokens : {128, 256, 1024}) {
    for (const TensorCoreCase& c : {TensorCoreCase{200, 64, 64}, TensorCoreCase{1000, 128, 128},
                                    TensorCoreCase{333, 256, 128}}) {
      for (const StateFlags& f : {kStatePatterns[1], kStatePatterns[2], kStatePatterns[3]}) {
        auto input = [&](const Shape& s, double std) {
          return random_tensor(s, seed++, std, DType::F32).to(DType::BF16).to(DType::F32);
        };
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.dk));
        const Shape state_shape{batch, heads, c.dk, c.dv};
        const Tensor q = input({batch, heads, c.length, c.dk}, scale);
        const Tensor k = input({batch, heads, c.length, c.dk}, scale);
        const Tensor v = input({batch, heads, c.length, c.dv}, 1.0);
        const Tensor d_o = input({batch, heads, c.length, c.dv}, 1.0);
        const Tensor kv_in =
            f.kv_in ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        const Tensor d_kv_out =
            f.d_kv_out ? random_tensor(state_shape, seed++, 1.0, DType::F32) : Tensor();
        Tensor o = Tensor::empty(v.shape(), DType::F32);
        Tensor kv_out = f.kv_out ? Tensor::empty(state_shape, DType::F32) : Tensor();
        lightning_attention_forward(q, k, v, slopes, 64, kv_in, o, kv_out);
        Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
               dv = Tensor::empty(v.shape(), DType::F32);
        Tensor d_kv_in = f.d_kv_in ? Tensor::empty(state_shape, DType::F32) : Tensor();
        lightning_attention_backward(q, k, v, slopes, 64, kv_in, d_o, d_kv_out, dq, dk, dv,
                                     d_kv_in);

        auto gpu = [](const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); };
        const Tensor qg = gpu(q), kg = gpu(k), vg = gpu(v), d_og = gpu(d_o);
        const Tensor kv_in_g = f.kv_in ? kv_in.to(Device::CUDA) : Tensor();
        const Tensor d_kv_out_g = f.d_kv_out ? d_kv_out.to(Device::CUDA) : Tensor();
        const cuda::AttentionDims dims{batch, heads, c.length, c.dk, c.dv};
        Tensor og = poisoned(v.shape(), DType::BF16);
        Tensor kv_out_g = f.kv_out ? poisoned(state_shape, DType::F32) : Tensor();
        const Tensor forward_scratch =
            workspace(cuda::lightning_forward_workspace_bytes(dims, true, chunk_tokens));
        cuda::lightning_forward(dims, slopes.data(), true, qg.raw_data(), kg.raw_data(),
                                vg.raw_data(), f32(kv_in_g), og.raw_data(), f32(kv_out_g),
                                forward_scratch.raw_data(), chunk_tokens);
        Tensor dqg = poisoned(q.shape(), DType::BF16), dkg = poisoned(k.shape(), DType::BF16),
               dvg = poisoned(v.shape(), DType::BF16);
        Tensor d_kv_in_g = f.d_kv_in ? poisoned(state_shape, DType::F32) : Tensor();
        const Tensor backward_scratch =
            workspace(cuda::lightning_backward_workspace_bytes(dims, true, chunk_tokens));
        cuda::lightning_backward(dims, slopes.data(), true, qg.raw_data(), kg.raw_data(),
                                 vg.raw_data(), f32(kv_in_g), d_og.raw_data(), f32(d_kv_out_g),
                                 dqg.raw_data(), dkg.raw_data(), dvg.raw_data(), f32(d_kv_in_g),
                                 backward_scratch.raw_data(), chunk_tokens);
        const std::string what = describe(c, f) + " chunk " + std::to_string(chunk_tokens);
        const double tolerance = gpu_tolerance(DType::BF16);
        EXPECT_LT(relative_error(og, o), tolerance) << "o " << what;
        if (f.kv_out) EXPECT_LT(relative_error(kv_out_g, kv_out), tolerance) << "kv_out " << what;
        EXPECT_LT(relative_error(dqg, dq), tolerance) << "dq " << what;
        EXPECT_LT(relative_error(dkg, dk), tolerance) << "dk " << what;
        EXPECT_LT(relative_error(dvg, dv), tolerance) << "dv " << what;
        if (f.d_kv_in)
          EXPECT_LT(relative_error(d_kv_in_g, d_kv_in), tolerance) << "d_kv_in " << what;
      }
    }
  }
}
#endif

}  // namespace linpar
