// The op plan: what a layer will execute for a given shard layout, described
// as a list of typed ops. The runtime executes these ops and counts what it
// did; the simulator costs the same list. A planned op is data, not a name:
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

enum class Pass : uint8_t { Forward, Backward };

// The process-grid group a collective runs over. Dp: the data-parallel
// replicas (dp ranks; CO2's outer group); DpSp: the ranks that average a
// model shard's gradients, the replicas' SP ranks too (dp·sp ranks,
// ProcessGrid::data_parallel; the runtime names it "dp" as well).
enum class CommGroup : uint8_t { Dp, Tp, Pp, Sp, DpSp };
const char* comm_group_name(CommGroup group);  // "dp", "tp", "pp", "sp"; DpSp "dp"

struct PlannedCollective {
  CollectiveKind kind = CollectiveKind::AllReduce;
  CommGroup group = CommGroup::Tp;
  int64_t bytes = 0;  // payload per rank, as the communicator counts it
  bool operator==(const PlannedCollective&) const = default;
};

// Where a LASP rank's op meets its neighbour's state (the ring's dependency
// edge; the neighbour's matching op is the one whose collective sends to this
// rank in the same layer and pass): Posts, the op before which the receive
// is posted (lasp/ring.cpp: recv_async before the intra-chunk kernel);
// Waits, the op that first needs the received state (receive->wait()). A
// ring that blocks on its receive (the published LASP code; sim
// --lasp-ring blocking) waits at Posts.
enum class RingReceive : uint8_t { None, Posts, Waits };

// Which of TransNormerLLM's weights a product multiplies: the layers
// `linpar profile` measures (a measured profile's GEMM rates are keyed by
// them; sim/profile_costs.h). Other: any other product.
enum class ProductWeight : uint8_t { Other, QkvuProj, OutProj, GluIn, GluOut, LmHead };

// A product's shape: batch × [m, k]·[k, n] in forward. Its backward is the
// two products dx = dy·Wᵀ and dW = xᵀ·dy of the same sizes.
struct MatmulShape {
  int64_t batch = 0, m = 0, n = 0, k = 0;  // all 0 for an op that is no product
  ProductWeight weight = ProductWeight::Other;
  bool operator==(const MatmulShape&) const = default;
};

// An attention op's shape: what its kernels' rate depends on besides the
// FLOPs (sim/op_costs.h). For the fused softmax core, all of it; for linear
// attention's ops (kind Attention) head_dim is the key width dk (2d with
// LRPE), which a measured profile's lightning rates are keyed by. Zero for
// every other op. 16 bytes: the layout search builds plans by the thousand
// per second.
struct CoreShape {
  int64_t scores = 0;    // attention scores computed: B·H·N²/2 when causal
  int32_t length = 0;    // N: tokens each query attends over (causal: up to N)
  int16_t head_dim = 0;  // d (the fused core), dk (linear attention)
  bool dropout = false;  // dropout on the probabilities (drawn in the kernel)
  bool backward = false;
  bool operator==(const CoreShape&) const = default;
};

// The layer field of ops outside the layers.
inline constexpr int32_t kEmbeddingLayer = -1;  // the embedding (first pipeline stage)
inline constexpr int32_t kHeadLayer = -2;       // final norm, LM head and loss (last stage)

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
