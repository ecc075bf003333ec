// The whole model: finite-difference gradients of every parameter in f64 for a
// 2-layer model (with LRPE, a partial attention block, tied and untied heads),
// and the op plan's FLOPs against the FLOPs the run actually counted.
#include "model/transnormer.h"

#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "gradcheck.h"
#include "model/plan_model.h"

namespace linpar {

namespace {

ModelConfig small_config(bool tied, LrpeLayers lrpe) {
  ModelConfig c;
  c.name = "gradcheck";
  c.n_layers = 2;
  c.width = 8;
  c.n_heads = 2;
  c.glu_dim = 12;
  c.vocab_size = 11;
  c.lrpe = lrpe;
  c.tie_embeddings = tied;
  c.attention_block = 3;  // sequence 7 = blocks of 3 + 3 + 1
  c.init_std = 0.3;       // large enough that every path carries gradient
  return c;
}

Tensor tokens_from(const std::vector<int32_t>& values) {
  return Tensor::from_vector<int32_t>({2, 7}, values);
}

void check_all_parameter_gradients(const ModelConfig& config) {
  TransNormerLLM model(config, 99, DType::F64);
  ASSERT_EQ(model.params().numel(), config.parameter_count());  // every parameter is checked below
  Tensor inputs = tokens_from({1, 4, 2, 9, 0, 3, 3, 10, 5, 7, 7, 1, 6, 2});
  Tensor targets = tokens_from({4, 2, 9, 0, 3, 3, 8, 5, 7, 7, 1, 6, 2, 0});
  TransNormerLLM::Cache cache;
  model.params().zero_grad();
  model.forward(inputs, targets, cache);
  model.backward(cache, 1.0);
  auto loss = [&] {
    TransNormerLLM::Cache scratch;
    return model.forward(inputs, targets, scratch);
  };
  for (Parameter& p : model.params().all()) {
    Tensor analytic = p.grad.clone();
    EXPECT_LT(testing::max_gradient_error(loss, p.value, analytic, 24), 1e-6) << p.name;
  }
}

}  // namespace

TEST(TransNormerGradient, TwoLayersUntiedWithLrpeInFirstLayer) {
  check_all_parameter_gradients(small_config(false, LrpeLayers::First));
}

TEST(TransNormerGradient, TwoLayersTiedEmbeddingsLrpeEverywhere) {
  check_all_parameter_gradients(small_config(true, LrpeLayers::All));
}

TEST(TransNormerGradient, PaperDecayRule) {
  ModelConfig c = small_config(false, LrpeLayers::None);
  c.decay = DecayRule::Paper;
  check_all_parameter_gradients(c);
}

TEST(TransNormer, GradientsAccumulateOverMicroBatches) {
  TransNormerLLM model(small_config(false, LrpeLayers::None), 5, DType::F64);
  Tensor a = tokens_from({1, 4, 2, 9, 0, 3, 3, 10, 5, 7, 7, 1, 6, 2});
  Tensor b = tokens_from({4, 2, 9, 0, 3, 3, 8, 5, 7, 7, 1, 6, 2, 0});
  TransNormerLLM::Cache cache;
  model.params().zero_grad();
  model.forward(a, b, cache);
  model.backward(cache, 0.5);
  model.forward(a, b, cache);
  model.backward(cache, 0.5);
  Tensor twice = model.params().get("layers.1.token_mixer.out_proj").grad.clone();
  model.params().zero_grad();
  model.forward(a, b, cache);
  model.backward(cache, 1.0);
  Tensor once = model.params().get("layers.1.token_mixer.out_proj").grad;
  for (int64_t i = 0; i < once.numel(); ++i) {
    EXPECT_NEAR(twice.data<double>()[i], once.data<double>()[i], 1e-12);
  }
}

TEST(TransNormer, PipelineStagesAreTheGreedyBalance) {
  // The closed form against the rule it implements: one layer per stage, each
  // further layer to the least loaded stage (earliest on ties), the embedding
  // and the head weighing a layer each on the first and last stage.
  ModelConfig c = preset_config("tnl-tiny");
  for (int64_t n = 1; n <= 128; ++n) {
    c.n_layers = n;
    for (int size = 1; size <= n; ++size) {
      std::vector<int64_t> layers(static_cast<size_t>(size), 1);
      auto load = [&](int s) { return layers[static_cast<size_t>(s)] + (s == 0) + (s == size - 1); };
      for (int64_t extra = n - size; extra > 0; --extra) {
        int best = 0;
        for (int s = 1; s < size; ++s) best = load(s) < load(best) ? s : best;
        ++layers[static_cast<size_t>(best)];
      }
      int64_t first = 0;
      for (int s = 0; s < size; ++s) {
        const PipelineStage st = pipeline_stage(c, s, size);
        ASSERT_EQ(st.first_layer, first) << n << " layers, stage " << s << " of " << size;
        ASSERT_EQ(st.end_layer, first + layers[static_cast<size_t>(s)]) << n << " layers, stage " << s << " of " << size;
        first = st.end_layer;
      }
      EXPECT_EQ(first, n);
    }
  }
}

TEST(TransNormer, InitialisationDependsOnlyOnSeedAndName) {
  ModelConfig c = small_config(false, LrpeLayers::None);
  TransNormerLLM a(c, 7), b(c, 7), other(c, 8);
  const auto& wa = a.params().get("layers.0.channel_mixer.l2").value;
  const auto& wb = b.params().get("layers.0.channel_mixer.l2").value;
  EXPECT_EQ(wa.to_vector<float>(), wb.to_vector<float>());
  EXPECT_NE(wa.to_vector<float>(),
            other.params().get("layers.0.channel_mixer.l2").value.to_vector<float>());
}

TEST(OpPlan, PlannedFlopsEqualCountedFlops) {
  for (LrpeLayers lrpe : {LrpeLayers::None, LrpeLayers::First}) {
    for (bool tied : {false, true}) {
      ModelConfig c = small_config(tied, lrpe);
      c.attention_block = 4;
      TransNormerLLM model(c, 1, DType::F32);
      const int64_t B = 3, N = 10;
      std::vector<int32_t> ids(static_cast<size_t>(B * N));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7) % 11);
      Tensor inputs = Tensor::from_vector<int32_t>({B, N}, ids), targets = inputs.clone();
      TransNormerLLM::Cache cache;
      FlopScope scope;
      model.forward(inputs, targets, cache);
      model.backward(cache, 1.0);
      OpPlan plan = plan_model(c, {}, {}, StepShape{B, N, 4});
      EXPECT_EQ(plan.total_flops(), scope.flops())
          << "lrpe " << static_cast<int>(lrpe) << " tied " << tied;
      EXPECT_GT(plan.total_bytes(), 0);
    }
  }
}

TEST(OpPlan, MatmulFlopsDominateAndFollowTheSixNRule) {
  // For a wide model the plan's FLOPs approach 6 · parameters · tokens (2 forward
  // + 4 backward per weight per token) plus the attention term.
  ModelConfig c;
  c.n_layers = 2;
  c.width = 256;
  c.n_heads = 4;
  c.glu_dim = 512;
  c.vocab_size = 256;
  TransNormerLLM model(c, 1);
  const int64_t tokens = 4 * 64;
  const double six_n = 6.0 * static_cast<double>(c.parameter_count() - c.vocab_size * c.width) *
                       static_cast<double>(tokens);  // the embedding lookup is not a matmul
  const double planned =
      static_cast<double>(plan_model(c, {}, {}, StepShape{4, 64, 4}).total_flops());
  EXPECT_GT(planned, six_n);
  EXPECT_LT(planned, 1.15 * six_n);
}

}  // namespace linpar
