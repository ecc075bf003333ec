// Counting what ops actually execute. Every op adds the FLOPs it performs (from
// the loop bounds it ran, not from a model formula) to the counting scopes open
// on this thread; the op-plan test compares that total with the plan.
//
// Recording a run op by op (the op plan's check, tests/parallel/
// op_plan_run_test.cpp): while an OpRecorder lives on a thread, each named
// op scope (OpScope, opened by the layers around the kernels and
// collectives of one planned op) appends a RecordedOp holding the FLOPs its
// kernels counted and the collectives its communicators made, so the list
// of what ran can be compared with the list the plan describes. Each public
// op (core/ops/*.h) also reports its kind and its tensor traffic
// (count_traffic), so the recorded op carries what bounds it and the bytes
// it moved beside its FLOPs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace linpar {

// What bounds an op and which rate the simulator gives it (sim/op_costs.h);
// the op plan's kind (model/op_plan.h), and what a public op reports of
// itself when recorded (count_traffic).
enum class OpKind : uint8_t {
  Matmul,            // a matrix product (weights or the unfused core's batched products)
  Attention,         // lightning attention and the SP strategies' state ops
  SoftmaxAttention,  // the softmax transformers' fused (FlashAttention) core
  Memory,            // element-wise, norms, reductions, layout copies: bound by memory
};
const char* op_kind_name(OpKind kind);  // "matmul", "attention", "softmax_attention", "memory"

// A micro-batch's passes: Forward, Backward, and Recompute, the forward ops a
// layer's backward runs again first to rebuild what forward did not keep
// (model/recompute.h: --recompute selective or full); then the step's tail
// after its micro-batches (parallel/step_update.h, the same code planned and
// run):
//   Reduce  the gradients' reduction DDP starts during the last backward, as
//           each bucket's gradients are complete (the simulator overlaps it
//           with that backward);
//   Update  what follows in order on each rank: ZeRO-1's flatten,
//           reduce-scatter and all-gather, the tied embedding's sum, the
//           gradient norm, the optimizer, the compute copies' refresh;
//   Outer   an outer loop's round end (CO2), once per τ steps.
enum class Pass : uint8_t { Forward, Backward, Recompute, Reduce, Update, Outer };
// Whether a pass runs forward's kernels (its products count 2mnk FLOPs, its
// rates are forward's): Forward, and Recompute, which runs them again.
inline bool runs_forward_kernels(Pass pass) {
  return pass == Pass::Forward || pass == Pass::Recompute;
}

// The layer field of ops outside the layers.
inline constexpr int32_t kEmbeddingLayer = -1;  // the embedding (first pipeline stage)
inline constexpr int32_t kHeadLayer = -2;       // final norm, LM head and loss (last stage)
inline constexpr int32_t kStepLayer = -3;       // the step's tail (every parameter)

// Where a LASP rank's op meets its neighbour's state (the ring's dependency
// edge; the neighbour's matching op is the one whose collective sends to this
// rank in the same layer and pass): Posts, the op before which the receive
// is posted (lasp/ring.cpp: recv_async before the intra-chunk kernel);
// Waits, the op that first needs the received state (receive->wait()). A
// ring that blocks on its receive (the published LASP code; sim
// --lasp-ring blocking) waits at Posts. The ring reports both where it
// posts and waits (note_ring_receive).
enum class RingReceive : uint8_t { None, Posts, Waits };

// Which of TransNormerLLM's weights a product multiplies: the layers
// `linpar profile` measures (a measured profile's GEMM rates are keyed by
// them; sim/profile_costs.h). Other: any other product. A layer names it
// when it opens the op's scope.
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

// While alive, receives every count_flops() made on this thread (scopes nest:
// every open scope receives the count).
class FlopScope {
 public:
  FlopScope();
  ~FlopScope();
  FlopScope(const FlopScope&) = delete;
  FlopScope& operator=(const FlopScope&) = delete;

  int64_t flops() const { return flops_; }

 private:
  friend void count_flops(int64_t flops);
  int64_t flops_ = 0;
  FlopScope* outer_;
};

void count_flops(int64_t flops);

// An op given a meta tensor (Device::Meta: shapes, no data) runs no kernel:
// it records the FLOPs its kernel would run for those shapes into the open
// op scope (not into FlopScopes: planning is no work) and returns true.
// Every public op (core/ops/*.h) asks this of its first operand after
// count_traffic, so the layers' own forward and backward run on meta
// tensors describe what they run on real ones (the op plan,
// model/plan_model.h).
bool plan_only(const Tensor& t, int64_t flops);

// A weight product [m, k]·[k, n] (or its backward) ran in the open op: its
// shape, tagged with the op scope's weight. A product op runs one shape.
void count_product(int64_t m, int64_t n, int64_t k);
// A linear-attention kernel ran in the open op on keys dk wide.
void count_attention_width(int64_t dk);
// The SP ring posted (RingReceive::Posts) or waited on (Waits) its
// neighbour's message: the next op scope opened on this thread is where.
void note_ring_receive(RingReceive receive);

// Called by every public op (core/ops/*.h) on each call, on any device: its
// kind and the tensors it reads and writes (undefined ones skipped), each
// counted once at its full size. That is the traffic the op must move, what
// the op plan's bytes describe; a kernel's tiling may re-read more. A tensor
// an op accumulates into (y += ...) is both read and written. Recorded into
// the open op scope while an OpRecorder lives; nothing otherwise.
void count_traffic(OpKind kind, std::initializer_list<const Tensor*> read,
                   std::initializer_list<const Tensor*> written);
// The same in bytes, for an op that moves part of a tensor.
void count_traffic(OpKind kind, int64_t bytes_read, int64_t bytes_written);

// One collective as a communicator made it: its kind, its group's name ("dp", "tp", "pp", "sp") and
// its payload per rank as the op plan counts it (an all-reduce's buffer, an all-gather's input, a
// reduce-scatter's output, an all-to-all's buffer, a send's message).
struct RecordedCollective {
  CollectiveKind kind = CollectiveKind::AllReduce;
  std::string group;
  int64_t bytes = 0;
};

struct RecordedOp {
  std::string name;  // the planned op's name, e.g. "layers.0.token_mixer.qkvu_proj.forward"
  int32_t layer = kHeadLayer;  // OpPlace's when the scope opened
  Pass pass = Pass::Forward;
  RingReceive receive = RingReceive::None;
  int64_t flops = 0;
  int64_t bytes_read = 0, bytes_written = 0;  // the public ops' count_traffic, summed
  uint8_t kinds = 0;                          // bit k: a public op of OpKind k ran in it
  std::vector<RecordedCollective> collectives;
  MatmulShape matmul;    // count_product's
  int16_t head_dim = 0;  // count_attention_width's

  // What bounds the op: a product if one ran in it, else attention if its
  // kernels ran, else memory (also for an op of collectives alone).
  OpKind kind() const;
};

// While alive, the op scopes opened on this thread record into it. FLOPs
// and collectives made outside any op scope (the optimizer, gradient
// reduction, pipeline sends) go to `outside`.
class OpRecorder {
 public:
  OpRecorder();
  ~OpRecorder();
  OpRecorder(const OpRecorder&) = delete;
  OpRecorder& operator=(const OpRecorder&) = delete;

  const std::vector<RecordedOp>& ops() const { return ops_; }
  std::vector<RecordedOp> take_ops() { return std::move(ops_); }
  const RecordedOp& outside() const { return outside_; }

 private:
  friend class OpScope;
  friend void count_flops(int64_t flops);

  friend bool plan_only(const Tensor& t, int64_t flops);
  friend void count_traffic(OpKind kind, std::initializer_list<const Tensor*> read,
                            std::initializer_list<const Tensor*> written);
  friend void count_traffic(OpKind kind, int64_t bytes_read, int64_t bytes_written);
  friend void record_collective(CollectiveKind kind, const std::string& group,
                                int64_t payload_bytes);
  friend void count_product(int64_t m, int64_t n, int64_t k);
  friend void count_attention_width(int64_t dk);
  friend void note_ring_receive(RingReceive receive);
  RecordedOp& current() { return open_ ? ops_.back() : outside_; }
  std::vector<RecordedOp> ops_;
  RecordedOp outside_;
  bool open_ = false;                             // an op scope is open: ops_.back()
  ProductWeight weight_ = ProductWeight::Other;   // the open scope's
  RingReceive next_receive_ = RingReceive::None;  // for the next scope opened
  OpRecorder* previous_;
};

// The kernels and collectives run while it lives are one planned op, named
// prefix + name. Without a recorder it does nothing (no string is built).
// Scopes do not nest (an internal error): every kernel belongs to one op.
class OpScope {
 public:
  // `weight`: which weight the op's product multiplies (a profile's key).
  OpScope(const std::string& prefix, const char* name, ProductWeight weight = ProductWeight::Other);
  // Named OpPrefix's prefix (if one is open) + name: for code that runs
  // inside a layer without knowing its name (the SP strategies).
  explicit OpScope(const char* name, ProductWeight weight = ProductWeight::Other);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  void open(std::string name, ProductWeight weight);  // with a recorder only
  OpRecorder* recorder_ = nullptr;
};

// While alive, the op scopes opened on this thread are of this layer (or
// kEmbeddingLayer, kHeadLayer) and pass: the model opens one around each
// layer's forward and backward and around the embedding and the head.
class OpPlace {
 public:
  OpPlace(int64_t layer, Pass pass);
  ~OpPlace();
  OpPlace(const OpPlace&) = delete;
  OpPlace& operator=(const OpPlace&) = delete;

 private:
  friend class OpScope;
  int32_t layer_;
  Pass pass_;
  OpPlace* outer_;
};

// While alive, OpScope(name) on this thread is named prefix + name.
class OpPrefix {
 public:
  explicit OpPrefix(const std::string& prefix);
  ~OpPrefix();
  OpPrefix(const OpPrefix&) = delete;
  OpPrefix& operator=(const OpPrefix&) = delete;

 private:
  friend class OpScope;
  const std::string& prefix_;
  OpPrefix* outer_;
};

// Called by the communicators for every collective they make.
void record_collective(CollectiveKind kind, const std::string& group, int64_t payload_bytes);

}  // namespace linpar
