// Pipeline parallelism: the schedules' shape, and under mpirun pp2 (GPipe and
// 1F1B), pp4, tp2×pp2 and dp2×tp2×pp2 training the same model as one process,
// closed-form PP traffic, and checkpoints moving from pp2 to one process.
#include "model/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <map>

#include "model/checkpoint.h"
#include "temp_dir.h"
#include "training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

TEST(PipelineSchedule, OneFOneBBoundsActivationsInFlight) {
  const int stages = 4;
  const int64_t m = 6;
  for (int s = 0; s < stages; ++s) {
    const auto gpipe = pipeline_actions(PipelineSchedule::GPipe, s, stages, m);
    const auto one_f_one_b = pipeline_actions(PipelineSchedule::OneFOneB, s, stages, m);
    ASSERT_EQ(gpipe.size(), 2u * m);
    ASSERT_EQ(one_f_one_b.size(), 2u * m);
    int64_t in_flight = 0, peak = 0, forwards = 0, backwards = 0;
    for (const auto& a : one_f_one_b) {
      if (a.backward) {
        EXPECT_EQ(a.micro_batch, backwards++);  // backwards in micro-batch order
        --in_flight;
      } else {
        EXPECT_EQ(a.micro_batch, forwards++);
        peak = std::max(peak, ++in_flight);
      }
      EXPECT_GE(in_flight, 0);
    }
    EXPECT_EQ(peak, std::min<int64_t>(stages - s, m)) << "stage " << s;
    EXPECT_EQ(gpipe[m - 1].micro_batch, m - 1);
    EXPECT_FALSE(gpipe[m - 1].backward);
  }
}

TEST(PipelineSchedule, ActionAtIndexEqualsTheList) {
  // m below, equal to and above the warm-up depth of the first stages.
  for (PipelineSchedule schedule : {PipelineSchedule::GPipe, PipelineSchedule::OneFOneB}) {
    for (int stages : {1, 2, 5}) {
      for (int64_t m : {1, 2, 3, 4, 7}) {
        for (int s = 0; s < stages; ++s) {
          const auto list = pipeline_actions(schedule, s, stages, m);
          for (int64_t k = 0; k < 2 * m; ++k) {
            const PipelineAction a = pipeline_action(schedule, s, stages, m, k);
            ASSERT_EQ(a.backward, list[static_cast<size_t>(k)].backward)
                << "stage " << s << " of " << stages << ", m " << m << ", action " << k;
            ASSERT_EQ(a.micro_batch, list[static_cast<size_t>(k)].micro_batch)
                << "stage " << s << " of " << stages << ", m " << m << ", action " << k;
          }
        }
      }
    }
  }
}

TEST(PipelineSchedule, InterleavedOrderIsMegatrons) {
  // 2 stages, 2 chunks, 4 micro-batches, by hand from Megatron-LM's rules:
  // groups of 2 micro-batches, chunk 0 then 1 forward, 1 then 0 backward;
  // stage 0 warms up with 2·1 + 1·2 = 4 forwards, stage 1 with 2.
  auto F = [](int64_t i, int c) { return PipelineAction{false, i, c}; };
  auto B = [](int64_t i, int c) { return PipelineAction{true, i, c}; };
  const std::vector<std::vector<PipelineAction>> want = {
      {F(0, 0), F(1, 0), F(0, 1), F(1, 1), F(2, 0), B(0, 1), F(3, 0), B(1, 1), F(2, 1), B(0, 0), F(3, 1),
       B(1, 0), B(2, 1), B(3, 1), B(2, 0), B(3, 0)},
      {F(0, 0), F(1, 0), F(0, 1), B(0, 1), F(1, 1), B(1, 1), F(2, 0), B(0, 0), F(3, 0), B(1, 0), F(2, 1),
       B(2, 1), F(3, 1), B(3, 1), B(2, 0), B(3, 0)}};
  for (int s = 0; s < 2; ++s) {
    const auto got = interleaved_pipeline_actions(s, 2, 2, 4);
    ASSERT_EQ(got.size(), want[static_cast<size_t>(s)].size());
    for (size_t k = 0; k < got.size(); ++k) {
      const PipelineAction& w = want[static_cast<size_t>(s)][k];
      EXPECT_TRUE(got[k].backward == w.backward && got[k].micro_batch == w.micro_batch && got[k].chunk == w.chunk)
          << "stage " << s << " action " << k;
    }
  }
  // Larger: every (chunk, micro-batch) runs forward once, then backward once.
  for (int stages : {2, 4}) {
    for (int chunks : {2, 3}) {
      for (int64_t m : {static_cast<int64_t>(stages), 2 * static_cast<int64_t>(stages), 5 * static_cast<int64_t>(stages)}) {
        for (int s = 0; s < stages; ++s) {
          std::vector<int> state(static_cast<size_t>(m * chunks), 0);  // 0 none, 1 forward, 2 backward
          for (const PipelineAction& a : interleaved_pipeline_actions(s, stages, chunks, m)) {
            ASSERT_GE(a.chunk, 0);
            ASSERT_LT(a.chunk, chunks);
            int& st = state[static_cast<size_t>(a.micro_batch * chunks + a.chunk)];
            ASSERT_EQ(st, a.backward ? 1 : 0) << "stage " << s << " micro-batch " << a.micro_batch << " chunk " << a.chunk;
            st = a.backward ? 2 : 1;
          }
          for (int st : state) EXPECT_EQ(st, 2);
        }
      }
    }
  }
}

TEST(PipelineSchedule, StagesBalanceLayersWithEmbeddingAndHead) {
  ModelConfig c = preset_config("tnl-tiny");
  c.n_layers = 6;
  // 8 units (embedding, 6 layers, head) over 4 stages: 2 units each.
  const int64_t expected[4][2] = {{0, 1}, {1, 3}, {3, 5}, {5, 6}};
  for (int s = 0; s < 4; ++s) {
    const PipelineStage stage = pipeline_stage(c, s, 4);
    EXPECT_EQ(stage.first_layer, expected[s][0]) << s;
    EXPECT_EQ(stage.end_layer, expected[s][1]) << s;
  }
  c.n_layers = 2;
  EXPECT_THROW(pipeline_stage(c, 1, 4), UserError);
}

struct NamedRun {
  std::vector<StepResult> steps;
  std::map<std::string, std::vector<double>> params;
};

NamedRun train_named(const TrainOptions& o, ProcessGrid& grid, int steps,
                     const ParameterSet** set = nullptr) {
  Trainer trainer(o, grid);
  NamedRun run;
  for (int s = 0; s < steps; ++s) run.steps.push_back(trainer.train_step());
  for (const Parameter& p : trainer.model().params().all()) {
    run.params[p.name] = p.value.to(DType::F64).to_vector<double>();
  }
  return run;
}

TrainOptions pipeline_options(int dp, int tp, int pp, PipelineSchedule schedule, DType dtype,
                              bool tied = false, int zero = 0) {
  TrainOptions o = quick_options(dp, zero);
  o.model.tie_embeddings = tied;
  o.layout.tp = tp;
  o.layout.pp = pp;
  o.layout.schedule = schedule;
  o.model.n_layers = 4;
  o.dtype = dtype;
  return o;
}

// Losses within 1e-5 (f32) and, in f64, every parameter this rank holds after
// 4 steps within 1e-9 of the one-process run's (compared by name; with tp > 1
// only the losses: the shards' boxes are checked in tensor_parallel_test).
// `tied`: the LM head is the embedding, held by the first and the last stage.
void check_equivalence(int dp, int tp, int pp, PipelineSchedule schedule, bool tied = false,
                       int zero = 0) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({dp, tp, pp, 1}, MPI_COMM_WORLD);
  for (DType dtype : {DType::F32, DType::F64}) {
    const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-9;
    const NamedRun reference =
        train_named(pipeline_options(1, 1, 1, schedule, dtype, tied), single, 4);
    const NamedRun run =
        train_named(pipeline_options(dp, tp, pp, schedule, dtype, tied, zero), grid, 4);
    for (size_t s = 0; s < run.steps.size(); ++s) {
      EXPECT_LT(relative(run.steps[s].loss, reference.steps[s].loss), tolerance)
          << "step " << s + 1;
      EXPECT_LT(relative(run.steps[s].grad_norm, reference.steps[s].grad_norm), tolerance)
          << "step " << s + 1;
    }
    if (dtype == DType::F64 && tp == 1) {
      for (const auto& [name, values] : run.params) {
        EXPECT_LT(tensor_difference(reference.params.at(name), values), tolerance) << name;
      }
    }
  }
}

}  // namespace

TEST(PipelineNp2, GPipeEqualsOneProcess) { check_equivalence(1, 1, 2, PipelineSchedule::GPipe); }
TEST(PipelineNp2, OneFOneBEqualsOneProcess) {
  check_equivalence(1, 1, 2, PipelineSchedule::OneFOneB);
}
TEST(PipelineNp4, Pp4EqualsOneProcess) { check_equivalence(1, 1, 4, PipelineSchedule::OneFOneB); }
TEST(PipelineNp4, Tp2Pp2EqualsOneProcess) {
  check_equivalence(1, 2, 2, PipelineSchedule::OneFOneB);
}
TEST(PipelineNp8, Dp2Tp2Pp2EqualsOneProcess) {
  check_equivalence(2, 2, 2, PipelineSchedule::OneFOneB);
}
// Tied embeddings: the last stage's copy of the embedding must end every step
// equal to the first stage's and to the one-process matrix (compared by name on
// both stages), and the gradient norm must count the matrix once.
TEST(PipelineNp2, TiedEmbeddingsEqualOneProcess) {
  check_equivalence(1, 1, 2, PipelineSchedule::OneFOneB, true);
}
TEST(PipelineNp4, TiedEmbeddingsPp4EqualsOneProcess) {
  check_equivalence(1, 1, 4, PipelineSchedule::GPipe, true);
}
TEST(PipelineNp4, TiedEmbeddingsDp2Pp2Zero1EqualsOneProcess) {
  check_equivalence(2, 1, 2, PipelineSchedule::OneFOneB, true, 1);
}
TEST(PipelineNp8, TiedEmbeddingsDp2Tp2Pp2EqualsOneProcess) {
  check_equivalence(2, 2, 2, PipelineSchedule::OneFOneB, true);
}

// Interleaved 1F1B (--pp-chunks v): v model chunks per stage, 8 layers so
// that every one of the pp·v virtual stages holds one; every step's loss and
// gradient norm within 1e-13 of 1F1B over the same stages (the norm's
// partial sums group other layers), and within 1e-9 (f64) of one process,
// parameters too; with DP, TP with Megatron-SP, ZeRO-1,
// tied embeddings (the copy on the last stage's last chunk) and recompute.
void check_interleaved(int dp, int tp, int pp, int chunks, bool tied = false, int zero = 0,
                       Recompute recompute = Recompute::None) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({dp, tp, pp, 1}, MPI_COMM_WORLD);
  auto options = [&](int d, int t, int p, int v) {
    TrainOptions o =
        pipeline_options(d, t, p, PipelineSchedule::OneFOneB, DType::F64, tied, d > 1 ? zero : 0);
    o.model.n_layers = 8;
    o.layout.tp_sp = t > 1;
    o.layout.pp_chunks = v;
    o.layout.recompute = recompute;
    return o;
  };
  const NamedRun reference = train_named(options(1, 1, 1, 1), single, 4);
  const NamedRun plain = train_named(options(dp, tp, pp, 1), grid, 4);
  const NamedRun run = train_named(options(dp, tp, pp, chunks), grid, 4);
  const std::string what =
      fmt::format("dp {} tp {} pp {} × {} chunks{}{} recompute {}", dp, tp, pp, chunks,
                  tied ? " tied" : "", zero ? " zero1" : "", recompute_name(recompute));
  for (size_t s = 0; s < run.steps.size(); ++s) {
    // The stages hold other layers than under 1F1B, so the norm's per-stage
    // partial sums, and from the first clipped update on the values, differ
    // in the last bits.
    EXPECT_LT(relative(run.steps[s].loss, plain.steps[s].loss), 1e-13) << what << " step " << s + 1;
    EXPECT_LT(relative(run.steps[s].grad_norm, plain.steps[s].grad_norm), 1e-13)
        << what << " step " << s + 1;
    EXPECT_LT(relative(run.steps[s].loss, reference.steps[s].loss), 1e-9)
        << what << " step " << s + 1;
  }
  if (tp == 1) {
    for (const auto& [name, values] : run.params) {
      EXPECT_LT(tensor_difference(reference.params.at(name), values), 1e-9) << what << " " << name;
    }
  }
}

TEST(PipelineNp2, InterleavedEqualsOneFOneBAndOneProcess) {
  check_interleaved(1, 1, 2, 2);
  check_interleaved(1, 1, 2, 4, /*tied=*/true);
  check_interleaved(1, 1, 2, 2, false, 0, Recompute::Full);
}
TEST(PipelineNp4, InterleavedEqualsOneFOneBAndOneProcess) {
  check_interleaved(1, 1, 4, 2, /*tied=*/true);
  check_interleaved(2, 1, 2, 2, false, /*zero=*/1);
  check_interleaved(1, 2, 2, 2, false, 0, Recompute::Selective);
}

// Interleaved, each micro-batch crosses the pp·v − 1 virtual-stage
// boundaries each way: m·2(pp·v − 1)·B·N·D·e, plus the norm's all-reduce.
TEST(PipelineNp4, InterleavedBytesEqualClosedForm) {
  ProcessGrid grid({1, 1, 4, 1}, MPI_COMM_WORLD);
  TrainOptions o = pipeline_options(1, 1, 4, PipelineSchedule::OneFOneB, DType::F32);
  o.model.n_layers = 8;
  o.layout.pp_chunks = 2;
  const int64_t S = 4, V = 8, m = o.layout.global_batch / o.layout.micro_batch,
                E = o.layout.micro_batch * o.layout.seq_len * o.model.width * 4;
  const NamedRun run = train_named(o, grid, 1);
  EXPECT_EQ(run.steps[0].comm_bytes[2], m * 2 * (V - 1) * E + S * (2 * (S - 1) * 8 / S));
}

// PP bytes per step, summed over the S stages: each of the m micro-batches
// sends its activation [B, N, D] forward across S − 1 stage boundaries and its
// gradient back across the same boundaries, plus the 8-byte all-reduce of the
// squared gradient norm over the PP group: m·2(S−1)·B·N·D·e + S·2(S−1)·8/S.
TEST(PipelineNp4, CountedBytesEqualClosedForm) {
  ProcessGrid grid({1, 1, 4, 1}, MPI_COMM_WORLD);
  const TrainOptions o = pipeline_options(1, 1, 4, PipelineSchedule::OneFOneB, DType::F32);
  const int64_t S = 4, m = o.layout.global_batch / o.layout.micro_batch,
                E = o.layout.micro_batch * o.layout.seq_len * o.model.width * 4;
  const NamedRun run = train_named(o, grid, 1);
  EXPECT_EQ(run.steps[0].comm_bytes[2], m * 2 * (S - 1) * E + S * (2 * (S - 1) * 8 / S));
}

// With tied embeddings the first and the last stage also all-reduce the
// embedding gradient [V, D] (a 2-rank ring: each sends 2·(2−1)/2·V·D·e).
TEST(PipelineNp4, TiedEmbeddingBytesEqualClosedForm) {
  ProcessGrid grid({1, 1, 4, 1}, MPI_COMM_WORLD);
  const TrainOptions o = pipeline_options(1, 1, 4, PipelineSchedule::OneFOneB, DType::F32, true);
  const int64_t S = 4, m = o.layout.global_batch / o.layout.micro_batch,
                E = o.layout.micro_batch * o.layout.seq_len * o.model.width * 4,
                W = o.model.vocab_size * o.model.width * 4;
  const NamedRun run = train_named(o, grid, 1);
  EXPECT_EQ(run.steps[0].comm_bytes[2],
            m * 2 * (S - 1) * E + S * (2 * (S - 1) * 8 / S) + 2 * W);
}

namespace {

// Two steps of `o` on `grid`, then a checkpoint in `ckpt`.
void save_after_two_steps(TrainOptions o, ProcessGrid& grid, const std::string& ckpt) {
  o.ckpt_dir = ckpt;
  Trainer trainer(o, grid);
  trainer.train_step();
  trainer.train_step();
  trainer.save();
}

// `o` on `grid` resumed from the newest checkpoint in `ckpt` takes the
// reference's steps 3 and 4.
void expect_resumed_steps(const TrainOptions& o, ProcessGrid& grid, const std::string& ckpt,
                          const NamedRun& reference, double tolerance) {
  Trainer resumed(o, grid);
  resumed.load(latest_checkpoint(ckpt), true);
  EXPECT_LT(relative(resumed.train_step().loss, reference.steps[2].loss), tolerance);
  EXPECT_LT(relative(resumed.train_step().loss, reference.steps[3].loss), tolerance);
}

}  // namespace

// Untied and tied (both stages write an "embedding" box; the reader takes one).
TEST(PipelineNp2, CheckpointFromPp2ResumesOnOneProcess) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({1, 1, 2, 1}, MPI_COMM_WORLD);
  for (bool tied : {false, true}) {
    auto options = [tied](int pp) {
      return pipeline_options(1, 1, pp, PipelineSchedule::OneFOneB, DType::F32, tied);
    };
    const NamedRun reference = train_named(options(1), single, 4);
    TempDir dir;
    const std::string ckpt = rank0_path(dir / "ckpt");
    save_after_two_steps(options(2), grid, ckpt);
    if (grid.rank() == 0) expect_resumed_steps(options(1), single, ckpt, reference, 1e-5);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// An interleaved pp2 × 2 run with full recomputation (tied) saves after 2
// steps; one process without either resumes it and trains what 4
// uninterrupted single-process steps train; and the single process's
// checkpoint resumes under interleaving.
TEST(PipelineNp2, InterleavedRecomputingCheckpointsMoveBetweenLayouts) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({1, 1, 2, 1}, MPI_COMM_WORLD);
  auto options = [](int pp) {
    TrainOptions o = pipeline_options(1, 1, pp, PipelineSchedule::OneFOneB, DType::F64, true);
    o.model.n_layers = 4;
    if (pp > 1) {
      o.layout.pp_chunks = 2;
      o.layout.recompute = Recompute::Full;
    }
    return o;
  };
  const NamedRun reference = train_named(options(1), single, 4);
  TempDir dir;
  const std::string ckpt = rank0_path(dir / "ckpt");
  save_after_two_steps(options(2), grid, ckpt);
  if (grid.rank() == 0) {
    expect_resumed_steps(options(1), single, ckpt, reference, 1e-9);
    save_after_two_steps(options(1), single, ckpt + "_single");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Trainer loaded(options(2), grid);
  loaded.load(latest_checkpoint(ckpt + "_single"), true);
  EXPECT_LT(relative(loaded.train_step().loss, reference.steps[2].loss), 1e-9);
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace linpar

namespace linpar {

// The trainer's options hold the planner's Layout (model/layout.h) and are
// checked by its one validate_layout; what the planner lays out and the
// trainer cannot run yet is refused by name.
TEST(TrainOptionsLayout, ValidatedAsThePlannerDoesAndUnrunnableLayoutsRefused) {
  TrainOptions o = quick_options(1, 0);
  EXPECT_NO_THROW(validate_train_options(o));
  EXPECT_EQ(o.layout.micro_batches(), 4);
  o.layout.global_batch = 7;  // not a multiple of dp · micro_batch: the planner's rule and words
  try {
    validate_train_options(o);
    ADD_FAILURE() << "a global batch of 7 with micro-batch 2 was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--global-batch 7"), std::string::npos) << e.what();
  }
  o = quick_options(1, 0);
  o.layout.recompute =
      Recompute::Selective;  // runnable now (tests/parallel/recompute_run_test.cpp)
  EXPECT_NO_THROW(validate_train_options(o));
  o = quick_options(1, 0);
  o.model.n_layers = 4;
  o.layout.pp = 2;
  o.layout.pp_chunks = 2;  // interleaved 1F1B: runnable (check_interleaved above)
  EXPECT_NO_THROW(validate_train_options(o));
  o.layout.pp_chunks = 3;  // pp 2 × 3 chunks = 6 model chunks of 4 layers
  EXPECT_THROW(validate_train_options(o), UserError);
  // The defaults are the trainer's, not the planner's.
  const TrainOptions defaults;
  EXPECT_EQ(defaults.layout.seq_len, 128);
  EXPECT_EQ(defaults.layout.micro_batch, 8);
  EXPECT_EQ(defaults.layout.global_batch, 8);
}

}  // namespace linpar
