// Overrides of a cluster's hardware values (sim/hardware.h): every field of
// the GPU, the two links and the cluster, and the roofline's efficiencies
// (sim/op_costs.h), from an INI file or from the command line, by one table
// of fields.
//
// INI file (`key = value` lines under `[section]` lines; `#` or `;` starts a
// comment anywhere on a line; each key at most once):
//   [gpu]      name, bf16_tflops, f32_tflops, hbm_gib, hbm_gbps
//   [intra]    name, gbps, latency_us       (GPU to GPU inside a node, per GPU)
//   [inter]    name, gbps, latency_us       (node to node, per NIC)
//   [cluster]  gpus_per_node, nodes, nics_per_node
//   [efficiency] matmul, matmul_overhead_us, attention, softmax_attention,
//                memory, elementwise   (shares of the peaks, > 0 and <= 1;
//                the overhead in µs, >= 0);
//                softmax_attention_half_length (tokens),
//                softmax_attention_forward_us, softmax_attention_backward_us,
//                softmax_attention_dropout_forward_ops,
//                softmax_attention_dropout_backward_ops (>= 0)
// Command line: `gpu.bf16_tflops=700` (section.key=value), one per --hw.
//
// `name` is a label only (reports print it); it does not load a preset.
// Rates, sizes and counts must be positive, latencies >= 0, counts whole.
// Unknown sections or keys, unparsable or impossible values, malformed lines:
// one UserError line naming the file and line (or the --hw argument), the key
// and the value; the cluster is left unchanged. After the values are applied
// the whole cluster is checked with validate(); on any error neither the
// cluster nor the efficiencies change.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "sim/hardware.h"
#include "sim/op_costs.h"

namespace linpar::sim {

// Applies every value of the INI file at `path` to `cluster` and `efficiency`.
void apply_hardware_ini(const std::string& path, ClusterSpec& cluster, Efficiency& efficiency);

// Applies one `section.key=value` assignment (the CLI's --hw).
void apply_hardware_override(const std::string& assignment, ClusterSpec& cluster, Efficiency& efficiency);

// Every overridable field as "section.key", in the table's order (for help).
std::vector<std::string> hardware_field_names();

// The [efficiency] fields' keys ("matmul", ...) and values in `efficiency`,
// in the table's order (for reports).
std::vector<std::pair<std::string, double>> efficiency_values(const Efficiency& efficiency);

}  // namespace linpar::sim
