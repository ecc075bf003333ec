// The KV-state pieces of core/ops/kv_state.h on the GPU against the CPU
// reference on fresh random inputs: q/k/v/o and their gradients in f32
// (within 1e-5) or bf16 (within 1e-2), every state f32 (within 1e-5 for bf16
// operands too: the tensor-core kernels carry f32 factors as two bf16 halves);
// shapes that are not multiples of the kernels' 64×64 tiles, 64-token
// sub-blocks and 32-wide steps, dk ≠ dv, one-token chunks, contractions wider
// than the tensor-core kernels take (264), decays near 0 and near 1; long
// chunks (4K–8K tokens, cut into spans over many CTAs) with d = 64 and 128;
// the state sums reproducible bit for bit. Overwritten outputs start poisoned
// with NaN, accumulated ones (+=) from non-zero values. FLOPs counted as on
// the CPU. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/op_stats.h"
#include "core/ops/kv_state.h"
#include "gpu_compare.h"
#include "gradcheck.h"
#include "kv_state_flops.h"

namespace linpar {

using namespace testing;

namespace {

struct Case {
  int64_t batch, heads, length, dk, dv;
};

// B·H·C·d sizes around the kernels' tiles (64 rows/columns, 32-wide steps);
// dk = 264: wider than the tensor-core rows × state kernel takes.
const Case kCases[] = {{2, 3, 13, 6, 4},   {1, 2, 1, 8, 8},      {2, 2, 100, 70, 40},
                       {1, 4, 64, 64, 64}, {1, 1, 129, 33, 130}, {3, 2, 31, 16, 16},
                       {1, 1, 70, 264, 24}};

// Long chunks, two heads each (slopes kLongSlopes): the tnl-385m head (d = 64)
// at 4K and 8K tokens, tnl-1b's (d = 128), d = 64 with LRPE (dk = 2d), a
// length that is no multiple of 64 or of a span, and widths that are no
// multiple of 8 (element-wise loads).
const Case kLongCases[] = {{1, 2, 4096, 64, 64}, {1, 2, 8192, 64, 64},  {1, 2, 8192, 128, 128},
                           {1, 2, 5000, 64, 64}, {1, 2, 4100, 128, 64}, {2, 2, 3001, 40, 20}};
// Decay near 1 over the whole chunk, and one that spans it (λ^8192 ≈ e^{−16}).
const std::vector<double> kLongSlopes = {1e-6, 2e-3};

std::vector<double> slopes_for(int64_t heads, uint64_t seed) {
  // Near 1 (slope 1e-6), moderate, and strong decay (λ^C underflows for long chunks).
  const double choices[] = {1e-6, 0.05, 0.7, 3.0};
  std::vector<double> slopes;
  for (int64_t h = 0; h < heads; ++h)
    slopes.push_back(choices[(static_cast<uint64_t>(h) + seed) % 4]);
  return slopes;
}

struct Inputs {
  DType dtype;
  uint64_t seed;
  // A fresh random tensor whose values the GPU dtype represents exactly (so
  // CPU and GPU see the same numbers), as an f32 CPU tensor.
  Tensor operand(const Shape& shape) {
    return random_tensor(shape, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
  }
  Tensor state(const Shape& shape) { return random_tensor(shape, seed++, 1.0, DType::F32); }
  Tensor gpu(const Tensor& t) const { return t.to(dtype).to(Device::CUDA); }
};

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " B" + std::to_string(c.batch) + " H" +
         std::to_string(c.heads) + " C" + std::to_string(c.length) + " dk" + std::to_string(c.dk) +
         " dv" + std::to_string(c.dv);
}

// chunk_state_forward and chunk_state_backward on the GPU against the CPU, on
// fresh inputs drawn from `seed`.
void expect_chunk_state_matches(const Case& c, DType dtype, uint64_t seed,
                                const std::vector<double>& slopes) {
  Inputs in{dtype, seed};
  const Shape qk{c.batch, c.heads, c.length, c.dk}, vo{c.batch, c.heads, c.length, c.dv},
      state{c.batch, c.heads, c.dk, c.dv};
  const Tensor k = in.operand(qk), v = in.operand(vo), d_kv = in.state(state);
  const Tensor dk0 = in.operand(qk), dv0 = in.operand(vo);  // accumulated into

  Tensor kv = Tensor::empty(state, DType::F32), dk = dk0.clone(), dv = dv0.clone();
  chunk_state_forward(k, v, slopes, kv);
  chunk_state_backward(k, v, slopes, d_kv, dk, dv);

  Tensor kv_g = poisoned(state, DType::F32), dk_g = in.gpu(dk0), dv_g = in.gpu(dv0);
  chunk_state_forward(in.gpu(k), in.gpu(v), slopes, kv_g);
  chunk_state_backward(in.gpu(k), in.gpu(v), slopes, d_kv.to(Device::CUDA), dk_g, dv_g);
  const std::string what = describe(c, dtype);
  // States are f32 on the GPU whatever the operands' dtype: f32 tolerance.
  EXPECT_LT(relative_error(kv_g, kv), 1e-5) << "kv " << what;
  EXPECT_LT(relative_error(dk_g, dk), gpu_tolerance(dtype)) << "dk " << what;
  EXPECT_LT(relative_error(dv_g, dv), gpu_tolerance(dtype)) << "dv " << what;
}

// inter_chunk_forward and inter_chunk_backward likewise.
void expect_inter_chunk_matches(const Case& c, DType dtype, uint64_t seed,
                                const std::vector<double>& slopes) {
  Inputs in{dtype, seed};
  const Shape qk{c.batch, c.heads, c.length, c.dk}, vo{c.batch, c.heads, c.length, c.dv},
      state{c.batch, c.heads, c.dk, c.dv};
  const Tensor q = in.operand(qk), d_o = in.operand(vo), kv_in = in.state(state);
  const Tensor o0 = in.operand(vo), dq0 = in.operand(qk), d_kv0 = in.state(state);

  Tensor o = o0.clone(), dq = dq0.clone(), d_kv_in = d_kv0.clone();
  inter_chunk_forward(q, slopes, kv_in, o);
  inter_chunk_backward(q, slopes, kv_in, d_o, dq, d_kv_in);

  Tensor o_g = in.gpu(o0), dq_g = in.gpu(dq0), d_kv_g = d_kv0.to(Device::CUDA);
  const Tensor kv_g = kv_in.to(Device::CUDA);
  inter_chunk_forward(in.gpu(q), slopes, kv_g, o_g);
  inter_chunk_backward(in.gpu(q), slopes, kv_g, in.gpu(d_o), dq_g, d_kv_g);
  const std::string what = describe(c, dtype);
  EXPECT_LT(relative_error(o_g, o), gpu_tolerance(dtype)) << "o " << what;
  EXPECT_LT(relative_error(dq_g, dq), gpu_tolerance(dtype)) << "dq " << what;
  // States are f32 on the GPU whatever the operands' dtype: f32 tolerance.
  EXPECT_LT(relative_error(d_kv_g, d_kv_in), 1e-5) << "d_kv_in " << what;
}

}  // namespace

TEST(KvStateCuda, ChunkStateForwardAndBackwardEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 100;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Case& c : kCases) {
      const uint64_t inputs = seed;
      seed += 100;
      expect_chunk_state_matches(c, dtype, inputs, slopes_for(c.heads, seed));
    }
  }
}

TEST(KvStateCuda, InterChunkForwardAndBackwardEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 5000;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Case& c : kCases) {
      const uint64_t inputs = seed;
      seed += 100;
      expect_inter_chunk_matches(c, dtype, inputs, slopes_for(c.heads, seed));
    }
  }
}

TEST(KvStateCuda, LongChunksEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 20000;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const Case& c : kLongCases) {
      expect_chunk_state_matches(c, dtype, seed, kLongSlopes);
      expect_inter_chunk_matches(c, dtype, seed + 50, kLongSlopes);
      seed += 100;
    }
  }
}

// The token sums are split over CTAs and added in a fixed order (no atomics):
// the same inputs give the same state bit for bit.
TEST(KvStateCuda, StateSumsAreReproducible) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Case c{1, 2, 8192, 64, 64};
  for (DType dtype : {DType::F32, DType::BF16}) {
    Inputs in{dtype, 30000};
    const Shape qk{c.batch, c.heads, c.length, c.dk}, vo{c.batch, c.heads, c.length, c.dv},
        state{c.batch, c.heads, c.dk, c.dv};
    const Tensor k = in.gpu(in.operand(qk)), v = in.gpu(in.operand(vo));
    const Tensor kv_in = in.state(state).to(Device::CUDA);
    Tensor kv[2], d_kv[2];
    for (int run = 0; run < 2; ++run) {
      kv[run] = poisoned(state, DType::F32);
      chunk_state_forward(k, v, kLongSlopes, kv[run]);
      d_kv[run] = Tensor::zeros(state, DType::F32, Device::CUDA);
      Tensor dq = Tensor::zeros(qk, dtype, Device::CUDA);
      inter_chunk_backward(k, kLongSlopes, kv_in, v, dq, d_kv[run]);
    }
    EXPECT_EQ(relative_error(kv[1], kv[0]), 0.0) << dtype_name(dtype);
    EXPECT_EQ(relative_error(d_kv[1], d_kv[0]), 0.0) << dtype_name(dtype);
  }
}

// out = λ^n a + b, into a fresh output and in place (out = b and out = a, as
// LASP-2's prefix sums and the ring's state update call it).
TEST(KvStateCuda, StateDecayAddEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Shape state{2, 5, 33, 17};
  const std::vector<double> slopes = {1e-6, 0.01, 0.3, 2.0, 9.0};
  Inputs in{DType::F32, 9000};
  const Tensor a = in.state(state), b = in.state(state);
  for (int64_t n : {0, 1, 24, 1000}) {
    Tensor want = Tensor::empty(state, DType::F32);
    state_decay_add(a, slopes, n, b, want);
    Tensor out = poisoned(state, DType::F32);
    state_decay_add(a.to(Device::CUDA), slopes, n, b.to(Device::CUDA), out);
    EXPECT_LT(relative_error(out, want), 1e-6) << "n " << n;
    Tensor into_b = b.to(Device::CUDA), into_a = a.to(Device::CUDA);
    state_decay_add(a.to(Device::CUDA), slopes, n, into_b, into_b);
    state_decay_add(into_a, slopes, n, b.to(Device::CUDA), into_a);
    EXPECT_LT(relative_error(into_b, want), 1e-6) << "out = b, n " << n;
    EXPECT_LT(relative_error(into_a, want), 1e-6) << "out = a, n " << n;
  }
}

TEST(KvStateCuda, CountedFlopsEqualTheFormulas) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  testing::expect_kv_state_flops(DType::F32, Device::CUDA);
}

// On the GPU every state is f32: a state in the operands' bf16 is refused.
TEST(KvStateCuda, StatesMustBeF32) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const std::vector<double> slopes = {0.1};
  const Tensor k = Tensor::zeros({1, 1, 4, 2}, DType::BF16, Device::CUDA);
  Tensor kv = Tensor::zeros({1, 1, 2, 2}, DType::BF16, Device::CUDA);
  EXPECT_THROW(chunk_state_forward(k, k, slopes, kv), InternalError);
}

}  // namespace linpar
