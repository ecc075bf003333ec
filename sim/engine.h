// The discrete-event engine of the simulator: tasks occupy one or more
// (rank, stream) resources for a duration, after the tasks they depend on.
// Each resource runs its tasks in the order they were added (a CUDA stream's
// order); a task starts when every resource it needs is free and every task
// it depends on has finished. A collective is one task over the comm streams
// of all its ranks: it starts when the last of them is ready, which is how a
// slow rank delays its group. Tasks are added after their dependencies (the
// step builder adds them in program order), so each is laid out the moment
// it is added: add() returns its id with its start and finish known. This is
// the one implementation of the rule: the step's pipeline and tail
// (sim/step.cpp schedule_step) and its SP ranks' op-by-op phase
// (simulate_sp_ranks) both lay their tasks out here. It keeps only flat
// arrays (times, a name pointer, the resources), so the layout search, which
// lays out millions of tasks, allocates nothing per task; a Chrome trace is
// built from them only when asked for.
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

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
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

// A task of another schedule, for a trace only (the step's op-by-op detail
// of a stage's SP ranks, laid out by their own schedule and shifted to where
// the step runs that pass): on trace process `process`, thread = stream.
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
  // `trace`: keep every task's start, name and resources for chrome_trace()
  // and start()/name(); without it (the layout search) only what laying out
  // needs, each task's finish, is kept: the same times.
  explicit Schedule(int ranks, Interference interference = {}, bool trace = true);

  // Lays a task out and returns its id (ids count up from 0). `name` must
  // outlive the schedule (a literal, or an op plan's name while the schedule
  // built from it lives): no name is copied. `after`: ids of tasks added
  // before, which must finish first.
  // Inlined (GCC would not on its own): the layout search adds millions of
  // single-stream tasks, and out of line this cost a fifth of its scheduling
  // time (bench/search_bench).
  [[gnu::always_inline]] int add(const char* name, Resource resource, double seconds,
                                 std::span<const int> after = {}) {
    const double start = ready(name, &resource, 1, after);
    const double duration = interfering_ && resource.stream == Stream::Compute
                                ? stretch(resource.rank, start, seconds)
                                : seconds;
    return record(name, &resource, 1, start, duration);
  }
  // A task over several resources (a collective over its ranks' comm
  // streams), all held for its whole duration.
  int add(const char* name, std::span<const Resource> resources, double seconds,
          std::span<const int> after = {});
  int add(const char* name, std::initializer_list<Resource> resources, double seconds,
          std::initializer_list<int> after = {}) {
    return add(name, std::span<const Resource>(resources.begin(), resources.size()), seconds,
               std::span<const int>(after.begin(), after.size()));
  }

  // Room for this many tasks without reallocating (the step knows roughly
  // how many it will add).
  void reserve(size_t tasks);

  int ranks() const { return ranks_; }
  bool traced() const { return trace_; }
  size_t size() const { return count_; }
  // When a task started and finished (finish − start exceeds its seconds
  // when interference stretched it, and grows if a later compute task
  // pushes back a collective still in flight). start() and name(): traced
  // schedules only.
  double start(int id) const { return traced_task(id).start; }
  double finish(int id) const { return finish_[static_cast<size_t>(id)]; }
  const char* name(int id) const { return traced_task(id).name; }
  // The last finish so far.
  double makespan() const { return makespan_; }
  // Seconds a rank's stream was busy (stretched durations), summed in task
  // order.
  double busy(int rank, Stream stream) const { return lanes_[slot(rank, stream)].busy; }

  // Chrome/Perfetto trace JSON (a traced schedule): one process per rank,
  // one thread per stream; `extra` tasks on further processes, extra_names[i]
  // naming process ranks() + i (a TracedTask's `process` indexes
  // extra_names).
  std::string chrome_trace(const std::vector<TracedTask>& extra = {},
                           const std::vector<std::string>& extra_names = {}) const;

 private:
  // Resources [first, end) of resources_.
  struct Range {
    uint32_t first = 0, end = 0;
  };
  struct Lane {
    double free = 0, busy = 0;
    // A comm lane's last task (the one interference pushes back), and where
    // its resources are kept when it holds more than this lane
    // (shared_[shared]; -1: this lane alone). Not kept for other lanes.
    int last = -1, shared = -1;
  };
  struct TracedTaskTimes {
    double start;
    const char* name;
    Range resources;
  };
  size_t slot(int rank, Stream stream) const {
    return static_cast<size_t>(rank) * kStreams + static_cast<size_t>(stream);
  }
  const TracedTaskTimes& traced_task(int id) const;
  [[noreturn]] void refuse(const char* name, const Resource* resources, size_t n,
                           std::span<const int> after) const;
  // The task's start from its resources and dependencies (checked: a bad
  // task is refused out of line).
  [[gnu::always_inline]] double ready(const char* name, const Resource* resources, size_t n,
                                      std::span<const int> after) const {
    const int id = static_cast<int>(count_);
    double start = 0;
    bool bad = n == 0;
    for (size_t k = 0; k < n; ++k) {
      const Resource& r = resources[k];
      if (r.rank < 0 || r.rank >= ranks_) {
        bad = true;
        break;
      }
      const double free = lanes_[slot(r.rank, r.stream)].free;
      start = free > start ? free : start;
    }
    for (int dep : after) {
      if (dep < 0 || dep >= id) {
        bad = true;
        break;
      }
      const double finish = finish_[static_cast<size_t>(dep)];
      start = finish > start ? finish : start;
    }
    if (bad) refuse(name, resources, n, after);
    return start;
  }
  // Interference of a compute task on `rank` starting at `start`: its
  // duration; pushes back the rank's collective in flight.
  double stretch(int rank, double start, double seconds);
  [[gnu::always_inline]] int record(const char* name, const Resource* resources, size_t n,
                                    double start, double duration) {
    const int id = static_cast<int>(count_);
    const double finish = start + duration;
    int shared = -1;
    if (n > 1) {
      shared = static_cast<int>(shared_.size());
      shared_.push_back(keep(resources, n));
    }
    for (size_t k = 0; k < n; ++k) {
      Lane& lane = lanes_[slot(resources[k].rank, resources[k].stream)];
      lane.free = finish;
      lane.busy += duration;
      // Only a comm lane's last task is ever pushed back (stretch()).
      if (resources[k].stream == Stream::Comm) {
        lane.last = id;
        lane.shared = shared;
      }
    }
    if (trace_) traced_.push_back({start, name, n > 1 ? shared_.back() : keep(resources, n)});
    // By hand rather than push_back, which GCC keeps out of line here (a
    // tenth of the search's time): grown on the cold path only.
    if (count_ == capacity_) grow(2 * capacity_ + 256);
    finish_[count_++] = finish;
    makespan_ = std::max(makespan_, finish);
    return id;
  }
  void grow(size_t capacity);
  Range keep(const Resource* resources, size_t n) {
    const uint32_t first = static_cast<uint32_t>(resources_.size());
    resources_.insert(resources_.end(), resources, resources + n);
    return {first, static_cast<uint32_t>(resources_.size())};
  }

  int ranks_;
  Interference interference_;
  bool interfering_, trace_;
  std::vector<Lane> lanes_;
  double makespan_ = 0;
  // By task id (count_ of them, room for capacity_): its finish, which every
  // dependent reads (dense: it stays in cache through the search's long
  // pipelines), and with `trace` the rest.
  size_t count_ = 0, capacity_ = 0;
  std::unique_ptr<double[]> finish_;  // not value-initialized: written before read
  std::vector<TracedTaskTimes> traced_;
  // The resources of tasks over several (always) and of every task (traced).
  std::vector<Range> shared_;
  std::vector<Resource> resources_;
};

}  // namespace linpar::sim
