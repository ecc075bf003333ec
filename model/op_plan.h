// The op plan: what a layer will execute for a given shard layout, described
// as a list of ops (name, FLOPs, bytes, collectives). The runtime executes
// exactly these ops and counts what it did; the simulator costs the same list.
// A test asserts that planned FLOPs equal the FLOPs counted while running.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace linpar {

struct PlannedCollective {
  std::string kind;   // all_reduce, all_gather, reduce_scatter, all_to_all, send_recv, broadcast
  std::string group;  // dp, tp, pp, sp
  int64_t bytes = 0;  // payload per rank
};

// A fused (FlashAttention) softmax core's shape: what its kernels' rate
// depends on besides the FLOPs (sim/op_costs.h). Zero for every other op.
// 16 bytes: the layout search builds plans by the thousand per second.
struct CoreShape {
  int64_t scores = 0;    // attention scores computed: B·H·N²/2 when causal
  int32_t length = 0;    // N: tokens each query attends over (causal: up to N)
  int16_t head_dim = 0;  // d
  bool dropout = false;  // dropout on the probabilities (drawn in the kernel)
  bool backward = false;
};

struct PlannedOp {
  std::string name;  // e.g. "layers.0.token_mixer.qkvu_proj.forward"
  int64_t flops = 0;
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
  std::vector<PlannedCollective> collectives;
  CoreShape core;
};

// Shapes one rank works on. Single-process runs have every degree 1; the
// parallel runtime fills the degrees and the plan divides the dimensions.
struct ShardLayout {
  int64_t tp = 1;  // tensor parallel degree: heads, SGLU width and vocabulary split
  int64_t sp = 1;  // sequence parallel degree: sequence split
};

struct StepShape {
  int64_t batch = 1;   // micro-batch size per rank
  int64_t length = 1;  // tokens per sample on this rank
  int64_t element_bytes = 4;
};

class OpPlan {
 public:
  void add(PlannedOp op) { ops_.push_back(std::move(op)); }
  void reserve(size_t ops) { ops_.reserve(ops); }
  const std::vector<PlannedOp>& ops() const { return ops_; }
  int64_t total_flops() const;
  int64_t total_bytes() const;

 private:
  std::vector<PlannedOp> ops_;
};

}  // namespace linpar
