#include "sim/engine.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace linpar::sim {

Schedule::Schedule(int ranks, Interference interference, bool trace)
    : ranks_(ranks),
      interference_(interference),
      interfering_(interference.compute > 0 || interference.comm > 0),
      trace_(trace),
      lanes_(static_cast<size_t>(ranks) * kStreams) {
  LINPAR_CHECK(ranks > 0, "a schedule of {} ranks", ranks);
}

void Schedule::grow(size_t capacity) {
  auto bigger = std::make_unique_for_overwrite<double[]>(capacity);
  std::copy(finish_.get(), finish_.get() + count_, bigger.get());
  finish_ = std::move(bigger);
  capacity_ = capacity;
}

void Schedule::reserve(size_t tasks) {
  if (capacity_ < tasks) grow(tasks);
  if (trace_) {
    traced_.reserve(tasks);
    resources_.reserve(tasks);
  }
}

const Schedule::TracedTaskTimes& Schedule::traced_task(int id) const {
  LINPAR_CHECK(trace_, "task {}'s start or name asked of a schedule kept without its trace", id);
  return traced_[static_cast<size_t>(id)];
}

Stretch interfere(const Interference& i, double start, double seconds, double comm_free) {
  if (comm_free <= start || (i.compute <= 0 && i.comm <= 0)) return {seconds, 0.0};
  const double overlap = std::min(comm_free - start, (1 + i.compute) * seconds);
  return {seconds + overlap * i.compute / (1 + i.compute), overlap * i.comm / (1 + i.comm)};
}

void Schedule::refuse(const char* name, const Resource* resources, size_t n,
                      std::span<const int> after) const {
  LINPAR_CHECK(n > 0, "sim task {} holds no resource", name);
  for (size_t k = 0; k < n; ++k) {
    LINPAR_CHECK(resources[k].rank >= 0 && resources[k].rank < ranks_, "sim task {}: rank {} of {}",
                 name, resources[k].rank, ranks_);
  }
  const int id = static_cast<int>(count_);
  for (int dep : after) {
    LINPAR_CHECK(dep >= 0 && dep < id, "sim task {}: depends on task {} not added before it", name,
                 dep);
  }
  LINPAR_CHECK(false, "sim task {} refused", name);
}

double Schedule::stretch(int rank, double start, double seconds) {
  Lane& comm = lanes_[slot(rank, Stream::Comm)];
  const Stretch st = interfere(interference_, start, seconds, comm.free);
  if (st.comm_delay > 0) {
    // The queue's last task ends later, on every lane it holds (a
    // collective's other ranks wait for it too) where it is still the last.
    const int last = comm.last;
    double& finish = finish_[static_cast<size_t>(last)];
    finish += st.comm_delay;
    auto push_back = [&](Lane& lane) {
      lane.busy += st.comm_delay;
      if (lane.last == last) lane.free = finish;
    };
    if (comm.shared < 0) {
      push_back(comm);
    } else {
      const Range r = shared_[static_cast<size_t>(comm.shared)];
      for (uint32_t k = r.first; k < r.end; ++k)
        push_back(lanes_[slot(resources_[k].rank, resources_[k].stream)]);
    }
    makespan_ = std::max(makespan_, finish);
  }
  return st.seconds;
}

int Schedule::add(const char* name, std::span<const Resource> resources, double seconds,
                  std::span<const int> after) {
  const double start = ready(name, resources.data(), resources.size(), after);
  // Interference stretches compute on one stream; a task over several
  // resources is a collective.
  const double duration =
      interfering_ && resources.size() == 1 && resources[0].stream == Stream::Compute
          ? stretch(resources[0].rank, start, seconds)
          : seconds;
  return record(name, resources.data(), resources.size(), start, duration);
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
  LINPAR_CHECK(trace_, "a Chrome trace asked of a schedule kept without its trace");
  for (size_t id = 0; id < traced_.size(); ++id) {
    const TracedTaskTimes& t = traced_[id];
    for (uint32_t k = t.resources.first; k < t.resources.end; ++k) {
      task(t.name, resources_[k].rank, resources_[k].stream, t.start, finish_[id]);
    }
  }
  for (const TracedTask& t : extra) {
    LINPAR_CHECK(t.process >= 0 && static_cast<size_t>(t.process) < extra_names.size(),
                 "traced task {} on process {} of {}", t.name, t.process, extra_names.size());
    task(t.name, ranks_ + t.process, t.stream, t.start, t.finish, t.category);
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

}  // namespace linpar::sim
