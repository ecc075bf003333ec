// The collective cost model against hand-computed values, and the group
// placement the process grid implies.
#include <gtest/gtest.h>

#include "core/error.h"
#include "sim/collectives.h"

namespace linpar::sim {

namespace {
// A made-up cluster with round numbers: 4 GPUs per node, NVLink 100 GB/s and
// 2 µs; 2 NICs per node of 10 GB/s and 10 µs (each GPU's share: 5 GB/s).
ClusterSpec round_cluster(int nodes) {
  ClusterSpec c;
  c.gpu = gpu_preset("h100");
  c.gpus_per_node = 4;
  c.nodes = nodes;
  c.intra = {"test-nvlink", 100.0, 2.0};
  c.inter = {"test-nic", 10.0, 10.0};
  c.nics_per_node = 2;
  return c;
}
constexpr int64_t kMB = 1000000;
}  // namespace

TEST(SimCollectives, GroupPlacementFollowsTheRankOrder) {
  // tp 4 on 8-GPU nodes: inside a node.
  GroupPlacement tp = place_group(4, 1, 8);
  EXPECT_EQ(tp.per_node, 4);
  EXPECT_EQ(tp.nodes, 1);
  // dp 16 with tp·sp = 4: 2 members per node over 8 nodes.
  GroupPlacement dp = place_group(16, 4, 8);
  EXPECT_EQ(dp.per_node, 2);
  EXPECT_EQ(dp.nodes, 8);
  // pp 4 with stride 64: one per node.
  GroupPlacement pp = place_group(4, 64, 8);
  EXPECT_EQ(pp.per_node, 1);
  EXPECT_EQ(pp.nodes, 4);
}

TEST(SimCollectives, RingFormulasInsideANode) {
  const ClusterSpec c = round_cluster(1);
  const GroupPlacement g = place_group(4, 1, 4);
  // All-reduce of 100 MB over 4 ranks at 100 GB/s, 2 µs: 6·2 µs + 1.5·100 MB / 100 GB/s.
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 100 * kMB, g, c), 12e-6 + 1.5e-3, 1e-12);
  // All-gather / reduce-scatter / all-to-all: 3·2 µs + 0.75 ms.
  for (CollectiveKind k : {CollectiveKind::AllGather, CollectiveKind::ReduceScatter, CollectiveKind::AllToAll}) {
    EXPECT_NEAR(collective_seconds(k, 100 * kMB, g, c), 6e-6 + 0.75e-3, 1e-12) << collective_name(k);
  }
  EXPECT_NEAR(collective_seconds(CollectiveKind::Broadcast, 100 * kMB, g, c), 6e-6 + 1e-3, 1e-12);
  EXPECT_NEAR(collective_seconds(CollectiveKind::SendRecv, 100 * kMB, g, c), 2e-6 + 1e-3, 1e-12);
  // One rank: nothing to do (except a send, which has a peer elsewhere).
  EXPECT_EQ(collective_seconds(CollectiveKind::AllReduce, 100 * kMB, place_group(1, 1, 4), c), 0.0);
}

TEST(SimCollectives, AcrossNodesOnTheNicShare) {
  const ClusterSpec c = round_cluster(4);
  // One rank per node (stride 4): the ring runs at 2 × 10 / 4 = 5 GB/s, 10 µs.
  const GroupPlacement g = place_group(4, 4, 4);
  ASSERT_EQ(g.per_node, 1);
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 100 * kMB, g, c), 60e-6 + 1.5 * 100e6 / 5e9, 1e-12);
  EXPECT_NEAR(collective_seconds(CollectiveKind::SendRecv, 100 * kMB, g, c), 10e-6 + 100e6 / 5e9, 1e-12);
}

TEST(SimCollectives, AllReduceAcrossManyNodesTakesTheFasterOfRingAndTree) {
  const ClusterSpec c = round_cluster(64);
  // One rank on each of 64 nodes at 5 GB/s and 10 µs: the ring pays
  // 2·63 latency steps, the tree 2·log2(64) = 12 and 2·S/B.
  const GroupPlacement g = place_group(64, 4, 4);
  ASSERT_EQ(g.per_node, 1);
  const double ring_small = 126 * 10e-6 + 2.0 * 63 / 64 * 8 / 5e9, tree_small = 12 * 10e-6 + 2.0 * 8 / 5e9;
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 8, g, c), tree_small, 1e-15);
  EXPECT_LT(tree_small, ring_small);
  const double S = 1e9;
  const double ring_large = 126 * 10e-6 + 2.0 * 63 / 64 * S / 5e9, tree_large = 12 * 10e-6 + 2.0 * S / 5e9;
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 1000 * kMB, g, c), ring_large, 1e-12);
  EXPECT_LT(ring_large, tree_large);
  EXPECT_NEAR(tree_allreduce_seconds(1000 * kMB, 64, 5.0, 10.0), tree_large, 1e-12);
  // Inside the hierarchy too: 4 per node on 64 nodes, 8 bytes: the part
  // across nodes (2 bytes) goes by the tree.
  const GroupPlacement h = place_group(256, 1, 4);
  ASSERT_EQ(h.nodes, 64);
  const double inside = ring_seconds(CollectiveKind::ReduceScatter, 8, 4, c.intra.gbps, c.intra.latency_us);
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 8, h, c),
              2 * inside + tree_allreduce_seconds(2, 64, 5.0, 10.0), 1e-15);
}

TEST(SimCollectives, HierarchicalAllReduce) {
  const ClusterSpec c = round_cluster(2);
  // 8 ranks, 4 per node on 2 nodes: RS inside (3·2 µs + 0.75·S/100 GB/s),
  // AR across on S/4 (2·10 µs + 1·(S/4)/5 GB/s), AG inside (as RS).
  const GroupPlacement g = place_group(8, 1, 4);
  ASSERT_EQ(g.per_node, 4);
  ASSERT_EQ(g.nodes, 2);
  const double S = 100e6;
  const double want = 2 * (6e-6 + 0.75 * S / 100e9) + (20e-6 + (S / 4) / 5e9);
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllReduce, 100 * kMB, g, c), want, 1e-12);
  // All-to-all: across (8−4)/8·S at 5 GB/s + 10 µs vs inside 3/8·S at 100 GB/s + 6 µs.
  EXPECT_NEAR(collective_seconds(CollectiveKind::AllToAll, 100 * kMB, g, c), 0.5 * S / 5e9 + 10e-6, 1e-12);
}

TEST(SimHardware, PresetsAndBadValues) {
  EXPECT_DOUBLE_EQ(gpu_preset("h100").bf16_tflops, 989.4);
  EXPECT_DOUBLE_EQ(gpu_preset("a100-80gb").hbm_gbps, 2039.0);
  EXPECT_NEAR(gpu_preset("h200").hbm_gib, 131.3, 0.1);
  const ClusterSpec c = make_cluster("a100-40gb", 8, 4, "ib-hdr", 8);
  EXPECT_EQ(c.intra.name, "nvlink3");
  EXPECT_EQ(c.gpus(), 32);
  EXPECT_THROW(gpu_preset("v100"), UserError);
  EXPECT_THROW(link_preset("token-ring"), UserError);
  EXPECT_THROW(make_cluster("h100", 0, 1), UserError);
}

}  // namespace linpar::sim
