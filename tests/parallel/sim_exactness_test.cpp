// The simulator's traffic is the runtime's: for layouts of every kind on two
// CPU ranks, the bytes `linpar sim` predicts a step sends equal what the
// process grid's communicators counted in a real step of the same layout
// (f32, so the plan's element size is 4).
#include <gtest/gtest.h>

#include "lasp/factory.h"
#include "sim/step.h"
#include "training_run.h"

namespace linpar {

using namespace testing;

namespace {
struct Case {
  const char* name;
  ParallelLayout layout;
  bool tp_sp = false;
  SequenceParallelKind kind = SequenceParallelKind::Lasp;
  int zero = 0;
};
}  // namespace

TEST(SimExactnessNp2, PredictedBytesEqualTheCountedBytes) {
  for (const Case& c : {Case{"dp2", {2, 1, 1, 1}},
                        Case{"dp2-zero1", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 1},
                        Case{"dp2-zero2", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 2},
                        Case{"dp2-zero3", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 3},
                        Case{"sp2-zero3", {1, 1, 1, 2}, false, SequenceParallelKind::Lasp, 3},
                        Case{"pp2-zero2", {1, 1, 2, 1}, false, SequenceParallelKind::Lasp, 2},
                        Case{"tp2", {1, 2, 1, 1}}, Case{"tp2-sp", {1, 2, 1, 1}, true},
                        Case{"pp2", {1, 1, 2, 1}}, Case{"sp2-lasp", {1, 1, 1, 2}},
                        Case{"sp2-lasp2", {1, 1, 1, 2}, false, SequenceParallelKind::Lasp2},
                        Case{"sp2-allgather", {1, 1, 1, 2}, false, SequenceParallelKind::AllGather},
                        Case{"sp2-ulysses", {1, 1, 1, 2}, false, SequenceParallelKind::Ulysses}}) {
    ProcessGrid grid(c.layout, MPI_COMM_WORLD);
    TrainOptions o = quick_options(c.layout.dp, c.zero);
    o.layout = with_degrees(o.layout, c.layout);
    o.layout.tp_sp = c.tp_sp;
    o.layout.sp_kind = c.kind;
    const TrainingRun run = train(o, grid, 1, lasp::make_sequence_attention);
    int64_t counted = 0;
    for (int64_t b : run.steps[0].comm_bytes) counted += b;

    sim::SimLayout l;
    static_cast<Layout&>(l) = o.layout;  // the run's layout, as the simulator reads it
    l.element_bytes = 4;
    const sim::StepPrediction p = sim::simulate_step(o.model, sim::make_cluster("h100", 2, 1), l);
    EXPECT_EQ(p.comm_bytes_per_step, counted) << c.name << ": dp " << run.steps[0].comm_bytes[0] << " tp "
                                              << run.steps[0].comm_bytes[1] << " pp " << run.steps[0].comm_bytes[2]
                                              << " sp " << run.steps[0].comm_bytes[3];
  }
}

}  // namespace linpar
