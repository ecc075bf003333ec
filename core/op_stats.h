// Counting what ops actually execute. Every op adds the FLOPs it performs (from
// the loop bounds it ran, not from a model formula) to the counting scopes open
// on this thread; the op-plan test compares that total with the plan.
//
// Recording a run op by op (the op plan's check, tests/parallel/
// op_plan_run_test.cpp): while an OpRecorder lives on a thread, each named
// op scope (OpScope, opened by the layers around the kernels and
// collectives of one planned op) appends a RecordedOp holding the FLOPs its
// kernels counted and the collectives its communicators made, so the list
// of what ran can be compared with the list the plan describes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace linpar {

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
  std::vector<RecordedCollective> collectives;
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
