// The op plan: what a micro-batch will execute for a given shard layout,
// described as a list of typed ops. TransNormerLLM's plan is its own forward
// and backward run on meta tensors (model/plan_model.h), the step's tail is
// parallel/step_plan.h, a GPT/Llama plan is sim/softmax_transformer.h; the
// simulator costs the list. A planned op is data, not a name:
// its kind, pass, layer, shapes, bytes, collectives and where it waits for a
// neighbour are fields, and the simulator reads only those (renaming an op
// changes no prediction: tests/sim/step_test.cpp). Names are for people,
// traces and the tests that compare the plan with a run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/communicator.h"
#include "core/op_stats.h"

namespace linpar {

// OpKind (what bounds an op and which rate the simulator gives it) is
// core/op_stats.h's, the kind a recorded run reports too.

// The process-grid group a collective runs over. Dp: the data-parallel
// replicas (dp ranks; CO2's outer group); DpSp: the ranks that average a
// model shard's gradients, the replicas' SP ranks too (dp·sp ranks,
// ProcessGrid::data_parallel; the runtime names it "dp" as well). Embedding:
// the first and the last pipeline stage of one column, which both hold a
// tied embedding (ProcessGrid::embedding).
enum class CommGroup : uint8_t { Dp, Tp, Pp, Sp, DpSp, Embedding };
const char* comm_group_name(CommGroup group);  // "dp", "tp", "pp", "sp", "embedding"; DpSp "dp"
// The group a runtime name stands for ("dp" is DpSp: the group a step's
// gradients are averaged over); an internal error for any other name.
CommGroup comm_group_named(const std::string& name);

struct PlannedCollective {
  CollectiveKind kind = CollectiveKind::AllReduce;
  CommGroup group = CommGroup::Tp;
  int64_t bytes = 0;  // payload per rank, as the communicator counts it
  bool operator==(const PlannedCollective&) const = default;
};

// Pass, RingReceive, ProductWeight, MatmulShape, CoreShape and the layer
// constants are core/op_stats.h's, what a recorded run reports too.

struct PlannedOp {
  std::string name;  // e.g. "layers.0.token_mixer.qkvu_proj.forward"
  OpKind kind = OpKind::Memory;
  Pass pass = Pass::Forward;
  RingReceive receive = RingReceive::None;
  int32_t layer = kHeadLayer;  // the layer index, or kEmbeddingLayer / kHeadLayer
  int64_t flops = 0;
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
  std::vector<PlannedCollective> collectives;
  MatmulShape matmul;  // kind Matmul
  CoreShape core;      // kinds SoftmaxAttention and Attention
  // The earlier op of the same plan this one repeats in all but its name and
  // layer (plan_model's layers built alike), or -1: the simulator costs an
  // op once and copies its cost to the repeats.
  int32_t repeats = -1;

  bool backward() const { return pass == Pass::Backward; }
};

// Where an op of a planner goes: the layer and pass every op it adds shares,
// and a name prefix. The planners add their ops through one of these.
class OpPlan;
struct OpSite {
  OpPlan* plan;
  std::string prefix;  // e.g. "layers.3.token_mixer."
  int32_t layer = kHeadLayer;
  Pass pass = Pass::Forward;

  // Adds prefix + name with the given kind and counts; returns it for the
  // caller to fill the shapes.
  PlannedOp& add(OpKind kind, std::string_view name, int64_t flops, int64_t bytes_read,
                 int64_t bytes_written, std::vector<PlannedCollective> collectives = {}) const;
  // A weight product batch × [m, k]·[k, n]: forward 2·batch·m·n·k FLOPs,
  // backward twice that (dx and dW).
  PlannedOp& add_matmul(std::string_view name, MatmulShape shape, int64_t bytes_read,
                        int64_t bytes_written,
                        std::vector<PlannedCollective> collectives = {}) const;
  PlannedOp& memory(std::string_view name, int64_t flops, int64_t bytes_read, int64_t bytes_written,
                    std::vector<PlannedCollective> collectives = {}) const {
    return add(OpKind::Memory, name, flops, bytes_read, bytes_written, std::move(collectives));
  }
};

// FLOPs of a product of this shape in this pass (OpSite::add_matmul's count).
int64_t matmul_flops(const MatmulShape& shape, Pass pass);

struct StepShape {
  int64_t batch = 1;   // micro-batch size per rank
  int64_t length = 1;  // tokens per sample on this rank
  int64_t element_bytes = 4;

  // Per-row statistics (the norms' sums and rstd, the loss's row maxima and
  // sums: Tensor::stats_dtype) and weight gradients (the f32 masters' under
  // mixed precision) are f32 on the GPU and the activations' type on the
  // CPU, which computes in f32 or f64: max(e, 4) either way.
  int64_t stats_bytes() const { return element_bytes > 4 ? element_bytes : 4; }
  int64_t gradient_bytes() const { return element_bytes > 4 ? element_bytes : 4; }
};

// A recorded op (core/op_stats.h) as the planned op it is: its fields
// moved over, its collectives' groups by name (comm_group_named).
PlannedOp planned_op(RecordedOp&& recorded);

class OpPlan {
 public:
  void add(PlannedOp op) { ops_.push_back(std::move(op)); }
  void reserve(size_t ops) { ops_.reserve(ops); }
  const std::vector<PlannedOp>& ops() const { return ops_; }
  std::vector<PlannedOp>& mutable_ops() { return ops_; }
  int64_t total_flops() const;
  int64_t total_bytes() const;

 private:
  std::vector<PlannedOp> ops_;
};

}  // namespace linpar
