// The op plan carries the collectives the runtime makes: the TP bytes it
// predicts for a micro-batch (wire bytes by the communicator's own formulas)
// equal what the TP group counted in a real step, with and without Megatron
// sequence parallelism — the simulator's traffic is the runtime's, exactly.
#include <gtest/gtest.h>

#include "model/plan_model.h"
#include "model/transnormer.h"
#include "training_run.h"

namespace linpar {

using namespace testing;

namespace {
int64_t planned_wire_bytes(const OpPlan& plan, CommGroup group, int64_t ranks) {
  int64_t total = 0;
  for (const PlannedOp& op : plan.ops()) {
    for (const PlannedCollective& c : op.collectives) {
      if (c.group == group) total += wire_bytes(c.kind, ranks, c.bytes);
    }
  }
  return total;
}
}  // namespace

TEST(PlanCollectivesNp2, PlannedTpBytesEqualTheCountedBytes) {
  ProcessGrid grid({1, 2, 1, 1}, MPI_COMM_WORLD);
  for (bool tp_sp : {false, true}) {
    TrainOptions o = quick_options(1, 0);
    o.layout.tp = 2;
    o.layout.tp_sp = tp_sp;
    const int64_t T = 2, m = o.layout.global_batch / o.layout.micro_batch;
    const OpPlan plan = plan_model(o.model, TensorParallel{nullptr, 0, 2, tp_sp}, SequencePlan{},
                                   StepShape{o.layout.micro_batch, o.layout.seq_len, 4});
    const int64_t per_micro = planned_wire_bytes(plan, CommGroup::Tp, T);
    EXPECT_GT(per_micro, 0);
    const TrainingRun run = train(o, grid, 1);
    // Every TP rank sends the same; plus the step's 8-byte gradient-norm all-reduce.
    EXPECT_EQ(run.steps[0].comm_bytes[1], T * (m * per_micro + all_reduce_bytes(T, 8))) << "tp_sp " << tp_sp;
  }
  // One rank: nothing planned.
  EXPECT_EQ(planned_wire_bytes(plan_model(preset_config("tnl-tiny"), {}, {}, StepShape{2, 24, 4}),
                               CommGroup::Tp, 1),
            0);
}

}  // namespace linpar
