#include "sim/engine.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace linpar::sim {

int Schedule::add(Task task) {
  const int id = static_cast<int>(tasks_.size());
  LINPAR_CHECK(!task.resources.empty(), "sim task {} holds no resource", task.name);
  LINPAR_CHECK(task.seconds >= 0, "sim task {}: negative duration {}", task.name, task.seconds);
  for (const Resource& r : task.resources) {
    LINPAR_CHECK(r.rank >= 0 && r.rank < ranks_, "sim task {}: rank {} of {}", task.name, r.rank, ranks_);
  }
  for (int dep : task.after) {
    LINPAR_CHECK(dep >= 0 && dep < id, "sim task {}: depends on task {} not added before it", task.name, dep);
  }
  tasks_.push_back(std::move(task));
  return id;
}

double Schedule::run() {
  // When each (rank, stream) is next free.
  std::vector<double> free_at(static_cast<size_t>(ranks_) * kStreams, 0.0);
  auto slot = [](const Resource& r) { return static_cast<size_t>(r.rank) * kStreams + static_cast<size_t>(r.stream); };
  double makespan = 0;
  for (Task& t : tasks_) {
    double start = 0;
    for (const Resource& r : t.resources) start = std::max(start, free_at[slot(r)]);
    for (int dep : t.after) start = std::max(start, tasks_[static_cast<size_t>(dep)].finish);
    t.start = start;
    t.finish = start + t.seconds;
    for (const Resource& r : t.resources) free_at[slot(r)] = t.finish;
    makespan = std::max(makespan, t.finish);
  }
  return makespan;
}

double Schedule::busy(int rank, Stream stream) const {
  double total = 0;
  for (const Task& t : tasks_) {
    for (const Resource& r : t.resources) {
      if (r.rank == rank && r.stream == stream) total += t.seconds;
    }
  }
  return total;
}

std::string Schedule::chrome_trace() const {
  nlohmann::json events = nlohmann::json::array();
  for (int rank = 0; rank < ranks_; ++rank) {
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", rank}, {"args", {{"name", "rank " + std::to_string(rank)}}}});
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 0}, {"args", {{"name", "compute"}}}});
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 1}, {"args", {{"name", "comm"}}}});
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 2}, {"args", {{"name", "send/recv"}}}});
  }
  for (const Task& t : tasks_) {
    for (const Resource& r : t.resources) {
      events.push_back({{"name", t.name}, {"ph", "X"}, {"pid", r.rank}, {"tid", static_cast<int>(r.stream)},
                        {"ts", t.start * 1e6}, {"dur", t.seconds * 1e6}});
    }
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

}  // namespace linpar::sim
