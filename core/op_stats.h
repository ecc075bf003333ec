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
  int64_t flops = 0;
  int64_t bytes_read = 0, bytes_written = 0;  // the public ops' count_traffic, summed
  uint8_t kinds = 0;                          // bit k: a public op of OpKind k ran in it
  std::vector<RecordedCollective> collectives;

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
  const RecordedOp& outside() const { return outside_; }

 private:
  friend class OpScope;
  friend void count_flops(int64_t flops);
  friend void count_traffic(OpKind kind, std::initializer_list<const Tensor*> read,
                            std::initializer_list<const Tensor*> written);
  friend void count_traffic(OpKind kind, int64_t bytes_read, int64_t bytes_written);
  friend void record_collective(CollectiveKind kind, const std::string& group,
                                int64_t payload_bytes);
  RecordedOp& current() { return open_ ? ops_.back() : outside_; }
  std::vector<RecordedOp> ops_;
  RecordedOp outside_;
  bool open_ = false;  // an op scope is open: ops_.back()
  OpRecorder* previous_;
};

// The kernels and collectives run while it lives are one planned op, named
// prefix + name. Without a recorder it does nothing (no string is built).
// Scopes do not nest (an internal error): every kernel belongs to one op.
class OpScope {
 public:
  OpScope(const std::string& prefix, const char* name);
  // Named OpPrefix's prefix (if one is open) + name: for code that runs
  // inside a layer without knowing its name (the SP strategies).
  explicit OpScope(const char* name);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  void open(std::string name);  // with a recorder only
  OpRecorder* recorder_ = nullptr;
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
