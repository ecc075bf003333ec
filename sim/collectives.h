// Alpha-beta costs of collectives for a process-grid group as the grid
// places it on a cluster. With n ranks, a payload of S bytes per rank, a
// per-direction bandwidth B and a per-step latency α, the bandwidth-optimal
// ring algorithms (what NCCL runs for large messages) take
//   all-reduce      2(n−1)·α + 2(n−1)/n · S/B
//   all-gather      (n−1)·α + (n−1)/n · S/B     (S: the gathered output)
//   reduce-scatter  (n−1)·α + (n−1)/n · S/B     (S: the input)
//   all-to-all      (n−1)·α + (n−1)/n · S/B     (pairwise exchange)
//   broadcast       (n−1)·α + S/B               (pipelined ring)
//   send/recv       α + S/B
// A group inside a node runs on NVLink (B = the link per GPU). A group with
// one rank per node runs on the NICs, each GPU getting its share of its
// node's NICs (every GPU of a node talks across nodes at once in a full
// layout). A group with several ranks on each of several nodes runs
// hierarchically, as NCCL does: reduce-scatter inside the node, the
// collective across nodes on 1/per_node of the data, all-gather inside the
// node (all-to-all: the intra- and inter-node parts in parallel).
// An all-reduce across nodes may also run as NCCL's double binary tree
// (Sanders et al. 2009; NCCL 2.4): the payload goes up and down two
// complementary trees, pipelined, so every rank moves about 2·S at full
// bandwidth in 2⌈log2 n⌉ latency steps:
//   all-reduce (tree)  2⌈log2 n⌉·α + 2 · S/B
// Like NCCL's tuner, the model takes the faster of ring and tree: the tree
// for small payloads over many nodes (the ring's 2(n−1)·α), the ring for
// large ones.
#pragma once

#include <cstdint>

#include "core/communicator.h"
#include "sim/hardware.h"

namespace linpar::sim {

// Where a group's ranks sit: `per_node` ranks on each of `nodes` nodes.
struct GroupPlacement {
  int ranks = 1;
  int per_node = 1;
  int nodes = 1;
};

// The placement of a group whose consecutive members are `stride` ranks apart
// in the world's rank order (ranks fill nodes in order: TP has stride 1, SP
// stride tp, DP stride tp·sp, PP stride tp·sp·dp).
GroupPlacement place_group(int ranks, int stride, int gpus_per_node);

// Seconds of one collective of `payload_bytes` per rank (as above).
double collective_seconds(CollectiveKind kind, int64_t payload_bytes, const GroupPlacement& group,
                          const ClusterSpec& cluster);

// The flat ring formula itself (n ranks, B in GB/s, α in µs).
double ring_seconds(CollectiveKind kind, int64_t payload_bytes, int ranks, double gbps,
                    double latency_us);
// The double binary tree all-reduce (n ranks, B in GB/s, α in µs).
double tree_allreduce_seconds(int64_t payload_bytes, int ranks, double gbps, double latency_us);

}  // namespace linpar::sim
