// The discrete-event engine of the simulator: tasks occupy one or more
// (rank, stream) resources for a duration, after the tasks they depend on.
// Each resource runs its tasks in the order they were added (a CUDA stream's
// order); a task starts when every resource it needs is free and every task
// it depends on has finished. A collective is one task over the comm streams
// of all its ranks: it starts when the last of them is ready, which is how a
// slow rank delays its group. Tasks must be added after their dependencies
// (the step builder adds them in program order), so one pass in insertion
// order gives every start and finish time.
//
// Interference: a collective in flight on a rank's comm stream shares the
// GPU with the rank's compute (NCCL's kernels hold SMs and memory bandwidth
// for as long as they run), so compute that overlaps it runs 1 + σ times
// slower and the collective 1 + ρ times slower (σ, ρ measured by `linpar
// profile`: docs/profile.md). A compute task starting at t while the comm
// stream is busy until c overlaps it for o = min(c − t, (1 + σ)·d) of wall
// time, doing o/(1 + σ) of its work d there: it lasts d + o·σ/(1 + σ), and
// the comm stream's queue (its last task) ends o·ρ/(1 + ρ) later. Zero σ and
// ρ: streams overlap for free. (First order: the comm stream's end is taken
// before it is pushed back.) Point-to-point sends use few SMs and do not
// interfere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace linpar::sim {

// Compute; collectives (DP buckets, ZeRO, SP groups); point-to-point sends
// (the pipeline's and LASP's), which the runtime runs on their own NCCL
// communicators and streams, so they never queue behind a bucket all-reduce.
enum class Stream : int { Compute = 0, Comm = 1, P2P = 2 };
inline constexpr int kStreams = 3;

struct Resource {
  int rank = 0;
  Stream stream = Stream::Compute;
};

struct Task {
  // A string that outlives the schedule (a literal, or an op plan's name
  // while the schedule built from it lives): the simulator lays out many
  // thousands of tasks per layout and copies no name.
  const char* name = "";
  std::vector<Resource> resources;  // all held for the whole duration
  double seconds = 0;
  std::vector<int> after;  // ids of tasks that must finish first
  // Filled by run() (finish − start exceeds `seconds` when interference
  // stretched the task):
  double start = 0, finish = 0;
};

struct Interference {
  double compute = 0;  // σ: compute slowdown while a collective runs
  double comm = 0;     // ρ: collective slowdown while compute runs
};

// The interference rule above for one compute task of `seconds` starting at
// `start` while the comm stream is busy until `comm_free`: the task's
// duration, and how much later the comm stream's queue ends.
struct Stretch {
  double seconds = 0, comm_delay = 0;
};
Stretch interfere(const Interference& i, double start, double seconds, double comm_free);

// A task laid out elsewhere, for a trace only (the step's op-by-op detail of
// a stage's SP ranks): on trace process `process`, thread = stream.
struct TracedTask {
  std::string name;  // its own copy: the op plans it comes from are gone by the trace
  int process = 0;
  Stream stream = Stream::Compute;
  double start = 0, finish = 0;
  // An op's cost class (op_class_name: "matmul", "memory", ...), the trace
  // event's "cat"; "" for other tasks.
  const char* category = "";
};

class Schedule {
 public:
  explicit Schedule(int ranks, Interference interference = {})
      : ranks_(ranks), interference_(interference) {}
  // Returns the task's id (its index).
  int add(Task task);
  const std::vector<Task>& tasks() const { return tasks_; }
  int ranks() const { return ranks_; }

  // Assigns start and finish times (interference included); returns the
  // makespan (the last finish).
  double run();
  // Seconds each rank's stream was busy (after run(); stretched durations).
  double busy(int rank, Stream stream) const;

  // Chrome/Perfetto trace JSON: one process per rank, one thread per stream;
  // `extra` tasks on further processes, extra_names[i] naming process
  // ranks() + i (a TracedTask's `process` indexes extra_names).
  std::string chrome_trace(const std::vector<TracedTask>& extra = {},
                           const std::vector<std::string>& extra_names = {}) const;

 private:
  int ranks_;
  Interference interference_;
  std::vector<Task> tasks_;
};

}  // namespace linpar::sim
