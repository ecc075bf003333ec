// The discrete-event engine of the simulator: tasks occupy one or more
// (rank, stream) resources for a duration, after the tasks they depend on.
// Each resource runs its tasks in the order they were added (a CUDA stream's
// order); a task starts when every resource it needs is free and every task
// it depends on has finished. A collective is one task over the comm streams
// of all its ranks: it starts when the last of them is ready, which is how a
// slow rank delays its group. Tasks must be added after their dependencies
// (the step builder adds them in program order), so one pass in insertion
// order gives every start and finish time.
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
  // Filled by run():
  double start = 0, finish = 0;
};

class Schedule {
 public:
  explicit Schedule(int ranks) : ranks_(ranks) {}
  // Returns the task's id (its index).
  int add(Task task);
  const std::vector<Task>& tasks() const { return tasks_; }
  int ranks() const { return ranks_; }

  // Assigns start and finish times; returns the makespan (the last finish).
  double run();
  // Seconds each rank's stream was busy (after run()).
  double busy(int rank, Stream stream) const;

  // Chrome/Perfetto trace JSON: one process per rank, one thread per stream.
  std::string chrome_trace() const;

 private:
  int ranks_;
  std::vector<Task> tasks_;
};

}  // namespace linpar::sim
