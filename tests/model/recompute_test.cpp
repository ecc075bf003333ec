// Activation recomputation (model/recompute.h, TransNormerLLM::set_recompute)
// changes what forward keeps, never a number: on the CPU the loss and every
// gradient are the same bits under none, selective and full, in f32 and f64,
// with LRPE on some or all layers, tied or untied, over two micro-batches
// accumulated, and on pipeline stages; on the GPU within bf16 rounding
// (atomic accumulations add in any order there). What forward keeps is
// smaller under each: selective drops the token mixer's core, full keeps only
// the layers' inputs.
#include <gtest/gtest.h>

#include <cstring>

#include "core/cuda/cuda_runtime.h"
#include "core/tensor.h"
#include "gpu_compare.h"
#include "model/transnormer.h"

namespace linpar {

namespace {

ModelConfig config_with(LrpeLayers lrpe, bool tied) {
  ModelConfig c;
  c.name = "recompute";
  c.n_layers = 3;
  c.width = 16;
  c.n_heads = 2;
  c.glu_dim = 24;
  c.vocab_size = 19;
  c.lrpe = lrpe;
  c.tie_embeddings = tied;
  c.attention_block = 5;  // sequence 12 = blocks of 5 + 5 + 2
  c.init_std = 0.2;
  return c;
}

Tensor ids(uint64_t seed, int64_t vocab) {
  return testing::random_ids(3 * 12, vocab, seed).reshape({3, 12});
}

struct Result {
  std::vector<double> losses;
  std::vector<Tensor> grads;  // on the CPU, in the model's dtype
  int64_t cache_bytes = 0;    // the layers' kept tensors after the first forward
};

int64_t bytes_of(const TransNormerLLM::LayerCache& lc) {
  int64_t total = 0;
  auto add = [&](const Tensor& t) { total += t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; };
  for (const Tensor* t :
       {&lc.input, &lc.token_norm, &lc.token_rstd, &lc.channel_norm, &lc.channel_rstd,
        &lc.token_mixer.qkvu, &lc.token_mixer.q, &lc.token_mixer.k, &lc.token_mixer.v,
        &lc.token_mixer.q_rot, &lc.token_mixer.k_rot, &lc.token_mixer.u,
        &lc.token_mixer.attention_norm, &lc.token_mixer.attention_rstd,
        &lc.token_mixer.attention_sums, &lc.token_mixer.gated, &lc.channel_mixer.a1,
        &lc.channel_mixer.a2, &lc.channel_mixer.gated}) {
    add(*t);
  }
  return total;
}

// Two micro-batches accumulated, on one model or on two pipeline stages
// (the second stage's input the first's output, the gradient passed back).
Result run(const ModelConfig& config, DType dtype, Device device, Recompute recompute,
           bool staged) {
  Result r;
  const Tensor a = ids(1, config.vocab_size), b = ids(2, config.vocab_size);
  if (!staged) {
    TransNormerLLM model(config, 7, device == Device::CUDA ? DType::F32 : dtype);
    if (device == Device::CUDA) model.place(Device::CUDA, dtype);
    model.set_recompute(recompute);
    model.params().zero_grad();
    for (int m = 0; m < 2; ++m) {
      TransNormerLLM::Cache cache;
      r.losses.push_back(model.forward(m == 0 ? a : b, m == 0 ? b : a, cache));
      if (m == 0) {
        for (const auto& lc : cache.layers) r.cache_bytes += bytes_of(lc);
      }
      model.backward(cache, 0.5);
    }
    for (const Parameter& p : model.params().all()) r.grads.push_back(p.grad.to(Device::CPU));
    return r;
  }
  const PipelineStage first = pipeline_stage(config, 0, 2), last = pipeline_stage(config, 1, 2);
  TransNormerLLM s0(config, 7, dtype, {}, &first), s1(config, 7, dtype, {}, &last);
  s0.set_recompute(recompute);
  s1.set_recompute(recompute);
  s0.params().zero_grad();
  s1.params().zero_grad();
  for (int m = 0; m < 2; ++m) {
    const Tensor& tokens = m == 0 ? a : b;
    const Tensor& targets = m == 0 ? b : a;
    TransNormerLLM::Cache c0, c1;
    Tensor mid = Tensor::empty({3, 12, config.width}, dtype), none, d_mid = mid.clone();
    s0.forward_stage(tokens, targets, none, mid, c0);
    r.losses.push_back(s1.forward_stage(tokens, targets, mid, none, c1));
    s1.backward_stage(c1, none, d_mid, 0.5);
    s0.backward_stage(c0, d_mid, none, 0.5);
  }
  for (TransNormerLLM* s : {&s0, &s1}) {
    for (const Parameter& p : s->params().all()) r.grads.push_back(p.grad.to(Device::CPU));
  }
  return r;
}

bool same_bits(const Tensor& x, const Tensor& y) {
  return x.nbytes() == y.nbytes() && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

}  // namespace

TEST(Recompute, SameBitsOnTheCpuUnderEveryKind) {
  int compared = 0;
  for (DType dtype : {DType::F32, DType::F64}) {
    for (LrpeLayers lrpe : {LrpeLayers::None, LrpeLayers::First, LrpeLayers::All}) {
      for (bool tied : {false, true}) {
        for (bool staged : {false, true}) {
          const ModelConfig c = config_with(lrpe, tied);
          const Result none = run(c, dtype, Device::CPU, Recompute::None, staged);
          for (Recompute recompute : {Recompute::Selective, Recompute::Full}) {
            const Result got = run(c, dtype, Device::CPU, recompute, staged);
            const std::string what =
                fmt::format("{} {} lrpe {} tied {} staged {}", recompute_name(recompute),
                            dtype_name(dtype), static_cast<int>(lrpe), tied, staged);
            EXPECT_EQ(got.losses, none.losses) << what;
            ASSERT_EQ(got.grads.size(), none.grads.size());
            for (size_t p = 0; p < got.grads.size(); ++p)
              EXPECT_TRUE(same_bits(got.grads[p], none.grads[p])) << what << " gradient " << p;
            if (!staged) {
              EXPECT_LT(got.cache_bytes, none.cache_bytes) << what;
            }
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_EQ(compared, 2 * 3 * 2 * 2 * 2);
}

// Full recomputation keeps each layer's input and nothing else (no SP
// strategy here); selective keeps all but the core.
TEST(Recompute, FullKeepsOnlyTheLayersInputs) {
  const ModelConfig c = config_with(LrpeLayers::All, false);
  const Result full = run(c, DType::F32, Device::CPU, Recompute::Full, false);
  EXPECT_EQ(full.cache_bytes, c.n_layers * 3 * 12 * c.width * 4);
  const Result none = run(c, DType::F32, Device::CPU, Recompute::None, false);
  const Result selective = run(c, DType::F32, Device::CPU, Recompute::Selective, false);
  // q, k, v, u, the norm's values (5 × [B, N, D]) and with LRPE q_rot, k_rot
  // (4 more) go; the row sums replace the rstd.
  EXPECT_EQ(none.cache_bytes - selective.cache_bytes, c.n_layers * 3 * 12 * 9 * c.width * 4);
}

TEST(RecomputeCuda, Bf16AndF32MatchRecomputeNone) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const ModelConfig c = config_with(LrpeLayers::First, false);
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Result none = run(c, dtype, Device::CUDA, Recompute::None, false);
    for (Recompute recompute : {Recompute::Selective, Recompute::Full}) {
      const Result got = run(c, dtype, Device::CUDA, recompute, false);
      const std::string what = fmt::format("{} {}", recompute_name(recompute), dtype_name(dtype));
      const double tolerance = dtype == DType::BF16 ? 1e-2 : 1e-5;
      for (size_t m = 0; m < none.losses.size(); ++m)
        EXPECT_NEAR(got.losses[m], none.losses[m], tolerance * std::abs(none.losses[m])) << what;
      for (size_t p = 0; p < got.grads.size(); ++p)
        EXPECT_LT(testing::relative_error(got.grads[p], none.grads[p]), tolerance)
            << what << " gradient " << p;
      EXPECT_LT(got.cache_bytes, none.cache_bytes) << what;
    }
  }
}

}  // namespace linpar
