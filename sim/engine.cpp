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

Stretch interfere(const Interference& i, double start, double seconds, double comm_free) {
  if (comm_free <= start || (i.compute <= 0 && i.comm <= 0)) return {seconds, 0.0};
  const double overlap = std::min(comm_free - start, (1 + i.compute) * seconds);
  return {seconds + overlap * i.compute / (1 + i.compute), overlap * i.comm / (1 + i.comm)};
}

double Schedule::run() {
  // When each (rank, stream) is next free, and each rank's last task on its
  // comm stream (the one interference pushes back).
  std::vector<double> free_at(static_cast<size_t>(ranks_) * kStreams, 0.0);
  std::vector<int> last_comm(static_cast<size_t>(ranks_), -1);
  auto slot = [](int rank, Stream stream) {
    return static_cast<size_t>(rank) * kStreams + static_cast<size_t>(stream);
  };
  double makespan = 0;
  for (size_t id = 0; id < tasks_.size(); ++id) {
    Task& t = tasks_[id];
    double start = 0;
    for (const Resource& r : t.resources) start = std::max(start, free_at[slot(r.rank, r.stream)]);
    for (int dep : t.after) start = std::max(start, tasks_[static_cast<size_t>(dep)].finish);
    t.start = start;
    t.finish = start + t.seconds;
    if (t.resources.size() == 1 && t.resources[0].stream == Stream::Compute) {
      const int rank = t.resources[0].rank;
      const Stretch st = interfere(interference_, start, t.seconds, free_at[slot(rank, Stream::Comm)]);
      t.finish = start + st.seconds;
      if (st.comm_delay > 0) {
        // The queue's last task ends later, on every rank it holds (a
        // collective's other ranks wait for it too).
        const int last = last_comm[static_cast<size_t>(rank)];
        Task& c = tasks_[static_cast<size_t>(last)];
        c.finish += st.comm_delay;
        for (const Resource& r : c.resources) {
          if (last_comm[static_cast<size_t>(r.rank)] == last) free_at[slot(r.rank, Stream::Comm)] = c.finish;
        }
        makespan = std::max(makespan, c.finish);
      }
    }
    for (const Resource& r : t.resources) {
      free_at[slot(r.rank, r.stream)] = t.finish;
      if (r.stream == Stream::Comm) last_comm[static_cast<size_t>(r.rank)] = static_cast<int>(id);
    }
    makespan = std::max(makespan, t.finish);
  }
  return makespan;
}

double Schedule::busy(int rank, Stream stream) const {
  double total = 0;
  for (const Task& t : tasks_) {
    for (const Resource& r : t.resources) {
      if (r.rank == rank && r.stream == stream) total += t.finish - t.start;
    }
  }
  return total;
}

std::string Schedule::chrome_trace(const std::vector<TracedTask>& extra,
                                   const std::vector<std::string>& extra_names) const {
  nlohmann::json events = nlohmann::json::array();
  auto process = [&](int pid, const std::string& name) {
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}});
    for (auto [tid, thread] : {std::pair{0, "compute"}, {1, "comm"}, {2, "send/recv"}}) {
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", thread}}}});
    }
  };
  auto task = [&](const std::string& name, int pid, Stream stream, double start, double finish,
                  const char* category = "") {
    nlohmann::json e = {{"name", name}, {"ph", "X"}, {"pid", pid}, {"tid", static_cast<int>(stream)},
                        {"ts", start * 1e6}, {"dur", (finish - start) * 1e6}};
    if (*category != '\0') e["cat"] = category;
    events.push_back(std::move(e));
  };
  for (int rank = 0; rank < ranks_; ++rank) process(rank, "rank " + std::to_string(rank));
  for (size_t i = 0; i < extra_names.size(); ++i) process(ranks_ + static_cast<int>(i), extra_names[i]);
  for (const Task& t : tasks_) {
    for (const Resource& r : t.resources) task(t.name, r.rank, r.stream, t.start, t.finish);
  }
  for (const TracedTask& t : extra) {
    LINPAR_CHECK(t.process >= 0 && static_cast<size_t>(t.process) < extra_names.size(),
                 "traced task {} on process {} of {}", t.name, t.process, extra_names.size());
    task(t.name, ranks_ + t.process, t.stream, t.start, t.finish, t.category);
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

}  // namespace linpar::sim
