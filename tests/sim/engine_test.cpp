// The discrete-event engine on small schedules whose times are worked out by
// hand: stream order, dependencies, a collective waiting for its slowest
// rank, overlap of compute and communication, and the trace.
#include "sim/engine.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <span>

#include "core/error.h"

namespace linpar::sim {

TEST(SimEngine, StreamsRunInOrderAndDependenciesHold) {
  Schedule s(2);
  const int a = s.add("a", {{0, Stream::Compute}}, 1.0, {});
  const int b = s.add("b", {{0, Stream::Compute}}, 2.0, {});   // after a on the same stream
  const int c = s.add("c", {{1, Stream::Compute}}, 0.5, {a});  // waits for a on another rank
  const int d = s.add("d", {{1, Stream::Compute}}, 1.0, {b});  // waits for b
  EXPECT_DOUBLE_EQ(s.makespan(), 4.0);
  EXPECT_DOUBLE_EQ(s.start(b), 1.0);
  EXPECT_DOUBLE_EQ(s.start(c), 1.0);
  EXPECT_DOUBLE_EQ(s.start(d), 3.0);
  EXPECT_DOUBLE_EQ(s.busy(1, Stream::Compute), 1.5);
}

// A DP step of two ranks: backward in two halves, the first half's gradient
// all-reduce overlapping the second half; rank 1 is slower, and the
// collective starts only when both ranks are ready.
TEST(SimEngine, CollectivesWaitForTheSlowestRankAndOverlapCompute) {
  Schedule s(2);
  const int b0 = s.add("bwd1", {{0, Stream::Compute}}, 1.0, {});
  const int b1 = s.add("bwd1", {{1, Stream::Compute}}, 1.5, {});
  const int ar1 = s.add("allreduce1", {{0, Stream::Comm}, {1, Stream::Comm}}, 2.0, {b0, b1});
  const int c0 = s.add("bwd2", {{0, Stream::Compute}}, 1.0, {});
  const int c1 = s.add("bwd2", {{1, Stream::Compute}}, 1.5, {});
  const int ar2 = s.add("allreduce2", {{0, Stream::Comm}, {1, Stream::Comm}}, 0.5, {c0, c1});
  const int opt0 = s.add("optimizer", {{0, Stream::Compute}}, 0.25, {ar1, ar2});
  const double makespan = s.makespan();
  EXPECT_DOUBLE_EQ(s.start(ar1), 1.5);  // rank 1 finishes bwd1 at 1.5
  EXPECT_DOUBLE_EQ(s.start(ar2), 3.5);  // comm stream free at 3.5 (bwd2 done at 3.0)
  EXPECT_DOUBLE_EQ(s.start(opt0), 4.0);
  EXPECT_DOUBLE_EQ(makespan, 4.25);
  // The trace names every rank and stream and holds one event per resource.
  const nlohmann::json trace = nlohmann::json::parse(s.chrome_trace());
  int spans = 0;
  for (const auto& e : trace["traceEvents"]) spans += e["ph"] == "X";
  EXPECT_EQ(spans, 1 + 1 + 2 + 1 + 1 + 2 + 1);
}

// Interference σ = 1, ρ = 1: an all-reduce of 0.5 s runs from 0; a compute
// task of 1 s starts at 0 beside it. For 0.5 s of wall time the compute does
// half speed (0.25 s of its work), then 0.75 s alone: it ends at 1.25; the
// all-reduce does half speed for those 0.5 s and ends 0.25 s later, at 0.75.
// A compute task after the comm stream is free is not slowed.
TEST(SimEngine, ComputeAndACollectiveAtOnceSlowEachOther) {
  Schedule s(1, Interference{1.0, 1.0});
  const int ar = s.add("allreduce", {{0, Stream::Comm}}, 0.5, {});
  const int c = s.add("bwd", {{0, Stream::Compute}}, 1.0, {});
  const int opt = s.add("optimizer", {{0, Stream::Compute}}, 0.5, {ar});
  EXPECT_DOUBLE_EQ(s.makespan(), 1.75);
  EXPECT_DOUBLE_EQ(s.finish(c), 1.25);
  EXPECT_DOUBLE_EQ(s.finish(ar), 0.75);
  EXPECT_DOUBLE_EQ(s.start(opt), 1.25);
  EXPECT_DOUBLE_EQ(s.busy(0, Stream::Compute), 1.75);
  EXPECT_DOUBLE_EQ(s.busy(0, Stream::Comm), 0.75);
  // The rule alone: a short task inside a long collective is slowed whole.
  const Stretch inside = interfere(Interference{0.5, 0.25}, 0.0, 1.0, 10.0);
  EXPECT_DOUBLE_EQ(inside.seconds, 1.5);
  EXPECT_DOUBLE_EQ(inside.comm_delay, 1.5 * 0.25 / 1.25);
  // Without interference the streams overlap for free.
  Schedule free(1);
  free.add("allreduce", {{0, Stream::Comm}}, 0.5, {});
  free.add("bwd", {{0, Stream::Compute}}, 1.0, {});
  EXPECT_DOUBLE_EQ(free.makespan(), 1.0);
}

// Tasks are laid out as they are added, and a compute task that overlaps a
// collective of two ranks pushes it back on both: rank 1's next collective
// waits for the later end though rank 1 computed nothing.
TEST(SimEngine, TasksAreLaidOutAsAddedAndAPushedBackCollectiveHoldsAllItsRanks) {
  Schedule s(2, Interference{1.0, 1.0});
  const int ar = s.add("allreduce", {{0, Stream::Comm}, {1, Stream::Comm}}, 0.5);
  EXPECT_DOUBLE_EQ(s.finish(ar), 0.5);  // known at once
  const int c = s.add("bwd", {{0, Stream::Compute}}, 1.0);
  EXPECT_DOUBLE_EQ(s.finish(c), 1.25);
  EXPECT_DOUBLE_EQ(s.finish(ar), 0.75);
  const int next = s.add("allreduce2", {{1, Stream::Comm}}, 0.5);
  EXPECT_DOUBLE_EQ(s.start(next), 0.75);
  EXPECT_DOUBLE_EQ(s.busy(1, Stream::Comm), 1.25);
  EXPECT_DOUBLE_EQ(s.makespan(), 1.25);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_STREQ(s.name(next), "allreduce2");
}

TEST(SimEngine, BadTasksAreRefused) {
  Schedule s(1);
  EXPECT_THROW(s.add("nowhere", std::span<const Resource>{}, 1.0), InternalError);
  EXPECT_THROW(s.add("future", {{0, Stream::Compute}}, 1.0, {3}), InternalError);
  EXPECT_THROW(s.add("rank", {{1, Stream::Compute}}, 1.0, {}), InternalError);
}

}  // namespace linpar::sim
