// The layout search's speed (sim/search.h) on one core: every layout of a
// model on a cluster at a fixed sequence and global batch. First a check: the
// three best layouts equal simulate_step's prediction for the same layout
// (the shared micro-batch costs change nothing); then one warm-up search and
// `repeats` timed ones, the median reported. Prints
//   search_check <layout> step_s ok|FAILED                 (three lines)
//   search <model> <gpus> <gpu> seq <N> batch <B> evaluated <n> fitting <f> rejected <r>
//          median_s <s> layouts_per_s <rate>
//   search_phases memory_s <s> costs_s <s> (plans <s>; <calls> micro-batch costs) schedule_s <s> (<runs>
//   schedules) top <rank> <layout> step_ms tokens/GPU/s mfu GiB/GPU     (three lines) explanation:
//   <line>
// Exit status 1 when the check fails.
// Usage: search_bench [model] [nodes] [gpus_per_node] [gpu] [seq_len] [global_batch] [repeats]
//        (default tnl-175b 128 8 h100 4096 1024 3)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sim/search.h"

int main(int argc, char** argv) {
  using namespace linpar::sim;
  const std::string model_name = argc > 1 ? argv[1] : "tnl-175b";
  const int nodes = argc > 2 ? std::atoi(argv[2]) : 128;
  const int per_node = argc > 3 ? std::atoi(argv[3]) : 8;
  const std::string gpu = argc > 4 ? argv[4] : "h100";
  SearchSpace space;
  space.seq_len = argc > 5 ? std::atoll(argv[5]) : 4096;
  space.global_batch = argc > 6 ? std::atoll(argv[6]) : 1024;
  const int repeats = argc > 7 ? std::max(1, std::atoi(argv[7])) : 3;
  try {
    const SimModel model = SimModel::from_preset(model_name);
    const ClusterSpec cluster = make_cluster(gpu, per_node, nodes);

    // Check, then time.
    SearchStats stats;
    std::vector<SearchResult> results = search_layouts(model, cluster, space, {}, &stats);
    bool ok = true;
    for (size_t i = 0; i < std::min<size_t>(3, results.size()); ++i) {
      if (!results[i].fits) break;
      const StepPrediction p = simulate_step(model, cluster, results[i].layout);
      const bool same =
          p.step_seconds == results[i].step_seconds && p.memory.total == results[i].memory.total;
      ok = ok && same;
      std::printf("search_check %s %.6f %s\n", describe_layout(results[i].layout).c_str(),
                  p.step_seconds, same ? "ok" : "FAILED");
    }
    if (!ok) return 1;

    std::vector<double> seconds;
    for (int r = 0; r < repeats; ++r) {
      results = search_layouts(model, cluster, space, {}, &stats);
      seconds.push_back(stats.seconds);
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::printf(
        "search %s %d %s seq %lld batch %lld evaluated %lld fitting %lld rejected %lld median_s "
        "%.3f "
        "layouts_per_s %.0f\n",
        model_name.c_str(), cluster.gpus(), gpu.c_str(), static_cast<long long>(space.seq_len),
        static_cast<long long>(space.global_batch), static_cast<long long>(stats.evaluated),
        static_cast<long long>(stats.fitting), static_cast<long long>(stats.rejected), median,
        static_cast<double>(stats.evaluated) / median);
    std::printf(
        "search_phases memory_s %.3f costs_s %.3f (plans %.3f; %lld micro-batch costs) schedule_s %.3f (%lld "
        "schedules)\n",
        stats.memory_seconds, stats.costs_seconds, stats.plan_seconds, static_cast<long long>(stats.micro_batch_costs),
        stats.schedule_seconds, static_cast<long long>(stats.schedules));
    for (size_t i = 0; i < std::min<size_t>(3, results.size()); ++i) {
      const SearchResult& r = results[i];
      if (!r.fits) break;
      std::printf("top %zu %s %.1f %.0f %.4f %.2f\n", i + 1, describe_layout(r.layout).c_str(),
                  r.step_seconds * 1e3, r.tokens_per_gpu_per_s, r.mfu,
                  static_cast<double>(r.memory.total) / (1 << 30));
    }
    std::printf("explanation: %s\n", explain_winner(results).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "search_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
