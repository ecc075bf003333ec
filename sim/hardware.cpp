#include "sim/hardware.h"

#include <fmt/format.h>

#include "core/error.h"

namespace linpar::sim {

namespace {

// Datasheet values (NVIDIA A100 and H100/H200 data sheets; dense bf16 without
// sparsity, f32 on CUDA cores; GB/s are 10^9 bytes per second).
const std::vector<GpuSpec>& gpus() {
  static const std::vector<GpuSpec> list = {
      {"a100-40gb", 312.0, 19.5, 40.0, 1555.0},
      {"a100-80gb", 312.0, 19.5, 80.0, 2039.0},
      {"h100", 989.4, 66.9, 80.0, 3350.0},
      {"h200", 989.4, 66.9, 141.0e9 / (1024.0 * 1024.0 * 1024.0), 4800.0},
  };
  return list;
}

// Per direction: NVLink 3 is 12 links × 25 GB/s, NVLink 4 18 × 25 GB/s per
// GPU; PCIe 4 x16 ~32 GB/s; InfiniBand HDR 200 Gb/s and NDR 400 Gb/s per NIC;
// Ethernet 80 and 100 Gb/s. Latencies: typical per-message figures (NVLink a
// few µs through NCCL, InfiniBand ~5 µs, TCP ~25 µs).
const std::vector<LinkSpec>& links() {
  static const std::vector<LinkSpec> list = {
      {"nvlink3", 300.0, 3.0}, {"nvlink4", 450.0, 3.0}, {"pcie4", 32.0, 5.0},
      {"ib-hdr", 25.0, 5.0},   {"ib-ndr", 50.0, 5.0},   {"eth-80g", 10.0, 25.0},
      {"eth-100g", 12.5, 25.0},
  };
  return list;
}

template <typename T>
std::string names_of(const std::vector<T>& list) {
  std::string out;
  for (const T& t : list) out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

}  // namespace

GpuSpec gpu_preset(const std::string& name) {
  for (const GpuSpec& g : gpus()) {
    if (g.name == name) return g;
  }
  user_error("--gpu {}: unknown GPU (known: {})", name, names_of(gpus()));
}

LinkSpec link_preset(const std::string& name) {
  for (const LinkSpec& l : links()) {
    if (l.name == name) return l;
  }
  user_error("link {}: unknown link (known: {})", name, names_of(links()));
}

std::vector<std::string> gpu_preset_names() {
  std::vector<std::string> out;
  for (const GpuSpec& g : gpus()) out.push_back(g.name);
  return out;
}

std::vector<std::string> link_preset_names() {
  std::vector<std::string> out;
  for (const LinkSpec& l : links()) out.push_back(l.name);
  return out;
}

ClusterSpec make_cluster(const std::string& gpu, int gpus_per_node, int nodes,
                         const std::string& inter_link, int nics_per_node) {
  ClusterSpec c;
  c.gpu = gpu_preset(gpu);
  c.gpus_per_node = gpus_per_node;
  c.nodes = nodes;
  c.intra = link_preset(gpu.rfind("a100", 0) == 0 ? "nvlink3" : "nvlink4");
  c.inter = link_preset(inter_link);
  c.nics_per_node = nics_per_node;
  validate(c);
  return c;
}

void validate(const ClusterSpec& c) {
  auto positive = [](const char* what, double v) {
    if (!(v > 0)) user_error("{} {}: must be positive", what, v);
  };
  positive("--gpus-per-node", c.gpus_per_node);
  positive("--nodes", c.nodes);
  positive("--nics-per-node", c.nics_per_node);
  positive("GPU bf16 TFLOP/s", c.gpu.bf16_tflops);
  positive("GPU f32 TFLOP/s", c.gpu.f32_tflops);
  positive("GPU memory GiB", c.gpu.hbm_gib);
  positive("GPU memory bandwidth GB/s", c.gpu.hbm_gbps);
  positive("intra-node link GB/s", c.intra.gbps);
  positive("inter-node link GB/s", c.inter.gbps);
  if (c.intra.latency_us < 0 || c.inter.latency_us < 0) {
    user_error("link latency {} µs: must be >= 0", std::min(c.intra.latency_us, c.inter.latency_us));
  }
}

}  // namespace linpar::sim
