// Hardware and cluster descriptions the simulator costs a step on: GPU
// presets (datasheet peak rates, HBM size and bandwidth), link presets
// (NVLink/NVSwitch per GPU, InfiniBand and Ethernet per NIC), and a cluster
// (a GPU type, GPUs per node, nodes, the intra- and inter-node links). Every
// field can be overridden by the CLI or an INI file; the presets' sources are
// in docs/simulator.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace linpar::sim {

struct GpuSpec {
  std::string name;
  double bf16_tflops = 0;  // dense tensor-core peak
  double f32_tflops = 0;   // non-tensor-core f32 peak
  double hbm_gib = 0;      // memory capacity, GiB
  double hbm_gbps = 0;     // memory bandwidth, GB/s (10^9 bytes)
  // Compute and a collective on one GPU at once (sim/engine.h): compute
  // runs 1 + σ times slower while a collective is in flight, the collective
  // 1 + ρ times slower (measured: docs/simulator.md).
  double overlap_compute_slowdown = 0;  // σ
  double overlap_comm_slowdown = 0;     // ρ
};

// One direction of one link, per endpoint: an NVLink/NVSwitch port set per
// GPU, or one NIC.
struct LinkSpec {
  std::string name;
  double gbps = 0;            // GB/s per direction (10^9 bytes/s)
  double latency_us = 0;      // α: per message (per ring step) latency
};

struct ClusterSpec {
  GpuSpec gpu;
  int gpus_per_node = 8;
  int nodes = 1;
  LinkSpec intra;  // GPU to GPU inside a node (per GPU)
  LinkSpec inter;  // node to node (per NIC)
  int nics_per_node = 8;
  int gpus() const { return gpus_per_node * nodes; }
};

// Presets by name; UserError naming the known names for an unknown one.
GpuSpec gpu_preset(const std::string& name);      // a100-40gb, a100-80gb, h100, h200
LinkSpec link_preset(const std::string& name);    // nvlink3, nvlink4, pcie4, ib-hdr, ib-ndr, eth-80g, eth-100g
std::vector<std::string> gpu_preset_names();
std::vector<std::string> link_preset_names();

// A cluster of `nodes` nodes of the GPU's usual node: NVLink of its
// generation inside, `nics_per_node` NICs of the given link across.
ClusterSpec make_cluster(const std::string& gpu, int gpus_per_node, int nodes,
                         const std::string& inter_link = "ib-ndr", int nics_per_node = 8);

// UserError naming the field and the rule for impossible values
// (non-positive rates, sizes or counts).
void validate(const ClusterSpec& cluster);

}  // namespace linpar::sim
