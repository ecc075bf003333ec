#include "sim/collectives.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace linpar::sim {

GroupPlacement place_group(int ranks, int stride, int gpus_per_node) {
  LINPAR_CHECK(ranks >= 1 && stride >= 1 && gpus_per_node >= 1, "place_group {} {} {}", ranks,
               stride, gpus_per_node);
  GroupPlacement g;
  g.ranks = ranks;
  // Members stride apart: a node of G GPUs holds G / stride of them (at least
  // one, at most the group).
  g.per_node = std::clamp(gpus_per_node / stride, 1, ranks);
  g.nodes = (ranks + g.per_node - 1) / g.per_node;
  return g;
}

double ring_seconds(CollectiveKind kind, int64_t payload_bytes, int ranks, double gbps,
                    double latency_us) {
  if (ranks <= 1 && kind != CollectiveKind::SendRecv) return 0.0;
  const double n = ranks, S = static_cast<double>(payload_bytes), B = gbps * 1e9,
               a = latency_us * 1e-6;
  switch (kind) {
    case CollectiveKind::AllReduce:
      return 2 * (n - 1) * a + 2 * (n - 1) / n * S / B;
    case CollectiveKind::AllGather:
    case CollectiveKind::ReduceScatter:
    case CollectiveKind::AllToAll:
      return (n - 1) * a + (n - 1) / n * S / B;
    case CollectiveKind::Broadcast:
      return (n - 1) * a + S / B;
    case CollectiveKind::SendRecv:
      return a + S / B;
  }
  return 0.0;
}

double tree_allreduce_seconds(int64_t payload_bytes, int ranks, double gbps, double latency_us) {
  if (ranks <= 1) return 0.0;
  const double steps = std::ceil(std::log2(static_cast<double>(ranks)));
  return 2 * steps * latency_us * 1e-6 + 2 * static_cast<double>(payload_bytes) / (gbps * 1e9);
}

namespace {

// An all-reduce across nodes: the faster of NCCL's ring and tree.
double across_nodes_allreduce(int64_t payload_bytes, int ranks, double gbps, double latency_us) {
  return std::min(ring_seconds(CollectiveKind::AllReduce, payload_bytes, ranks, gbps, latency_us),
                  tree_allreduce_seconds(payload_bytes, ranks, gbps, latency_us));
}

}  // namespace

double collective_seconds(CollectiveKind kind, int64_t payload_bytes, const GroupPlacement& g,
                          const ClusterSpec& c) {
  const double intra = c.intra.gbps, a_intra = c.intra.latency_us;
  // Every GPU of a node crosses nodes at once: each gets its share of the NICs.
  const double inter = static_cast<double>(c.nics_per_node) * c.inter.gbps / c.gpus_per_node;
  const double a_inter = c.inter.latency_us;
  if (g.nodes <= 1) return ring_seconds(kind, payload_bytes, g.ranks, intra, a_intra);
  if (g.per_node <= 1) {
    if (kind == CollectiveKind::AllReduce) return across_nodes_allreduce(payload_bytes, g.ranks, inter, a_inter);
    return ring_seconds(kind, payload_bytes, g.ranks, inter, a_inter);
  }
  const int64_t S = payload_bytes, part = payload_bytes / g.per_node;
  switch (kind) {
    case CollectiveKind::AllReduce:
      return ring_seconds(CollectiveKind::ReduceScatter, S, g.per_node, intra, a_intra) +
             across_nodes_allreduce(part, g.nodes, inter, a_inter) +
             ring_seconds(CollectiveKind::AllGather, S, g.per_node, intra, a_intra);
    case CollectiveKind::AllGather:
      // Across nodes each local rank gathers its column's blocks (1/per_node
      // of the output), then the node gathers inside.
      return ring_seconds(CollectiveKind::AllGather, part, g.nodes, inter, a_inter) +
             ring_seconds(CollectiveKind::AllGather, S, g.per_node, intra, a_intra);
    case CollectiveKind::ReduceScatter:
      return ring_seconds(CollectiveKind::ReduceScatter, S, g.per_node, intra, a_intra) +
             ring_seconds(CollectiveKind::ReduceScatter, part, g.nodes, inter, a_inter);
    case CollectiveKind::AllToAll: {
      // Of the (n−1)/n·S a rank sends, (n − per_node)/n crosses nodes; the
      // two parts move at once and the slower sets the time.
      const double n = g.ranks, bytes = static_cast<double>(S);
      const double across = (n - g.per_node) / n * bytes / (inter * 1e9) + (g.nodes - 1) * a_inter * 1e-6;
      const double inside = (g.per_node - 1) / n * bytes / (intra * 1e9) + (g.per_node - 1) * a_intra * 1e-6;
      return std::max(across, inside);
    }
    case CollectiveKind::Broadcast:
      return ring_seconds(CollectiveKind::Broadcast, S, g.nodes, inter, a_inter) +
             ring_seconds(CollectiveKind::Broadcast, S, g.per_node, intra, a_intra);
    case CollectiveKind::SendRecv:
      // A group spread over nodes: its neighbours may sit on another node.
      return ring_seconds(CollectiveKind::SendRecv, S, 2, inter, a_inter);
  }
  return 0.0;
}

}  // namespace linpar::sim
