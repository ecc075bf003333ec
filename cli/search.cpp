// linpar search: every valid layout of a model on a cluster at a fixed
// sequence length and global batch (sim/search.h), the best N that fit as a
// table or JSON with stable keys, how many were evaluated and how fast, and
// one line on why the best wins.
#include "sim/search.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/sim_options.h"
#include "core/error.h"

namespace linpar::cli {

namespace {

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }

std::vector<std::string> split_commas(const std::string& option, const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty())
      user_error("--{} {}: expected a comma-separated list without empty items", option, list);
    items.push_back(item);
  }
  if (items.empty()) user_error("--{}: expected a comma-separated list", option);
  return items;
}

// The integers of a comma-separated --option list; UserError naming the
// item that is not one.
std::vector<int64_t> parse_integers(const char* option, const std::string& list) {
  std::vector<int64_t> values;
  for (const std::string& item : split_commas(option, list)) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size()) user_error("--{} {}: '{}' is not an integer", option, list, item);
    values.push_back(v);
  }
  return values;
}

std::vector<int64_t> parse_taus(const std::string& list) {
  std::vector<int64_t> taus = parse_integers("co2-tau", list);
  for (int64_t tau : taus) {
    if (tau < 0) user_error("--co2-tau {}: {} must be 0 (off) or positive", list, tau);
  }
  return taus;
}

std::vector<int> parse_chunks(const std::string& list) {
  std::vector<int> chunks;
  for (int64_t v : parse_integers("pp-chunks", list)) {
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      user_error("--pp-chunks {}: {} is out of range", list, v);
    chunks.push_back(static_cast<int>(v));  // positive and distinct: checked by the search
  }
  return chunks;
}

std::vector<int> parse_zero_stages(const std::string& list) {
  std::vector<int> stages;
  for (int64_t v : parse_integers("zero", list)) {
    if (v < 0 || v > 3) user_error("--zero {}: {} is not a ZeRO stage (0, 1, 2 or 3)", list, v);
    if (std::find(stages.begin(), stages.end(), v) != stages.end())
      user_error("--zero {}: stage {} is listed twice", list, v);
    stages.push_back(static_cast<int>(v));
  }
  return stages;
}

std::string co2_name(int64_t tau) { return tau > 0 ? fmt::format("τ={}", tau) : "off"; }

nlohmann::json layout_json(int rank, const sim::SearchResult& r, const SimSetup& setup) {
  const sim::SimLayout& l = r.layout;
  nlohmann::json j = {{"rank", rank},
                      {"dp", l.dp},
                      {"tp", l.tp},
                      {"tp_sp", l.tp_sp},
                      {"pp", l.pp},
                      {"pp_schedule", pipeline_schedule_name(l.schedule)},
                      {"pp_chunks", l.pp_chunks},
                      {"sp", l.sp},
                      {"sp_kind", sp_kind_name(l.sp_kind)},
                      {"micro_batch", l.micro_batch},
                      {"recompute", recompute_name(l.recompute)},
                      {"zero", l.zero},
                      {"co2_tau", l.co2_tau},
                      {"step_time_s", r.step_seconds},
                      {"tokens_per_gpu_per_s", r.tokens_per_gpu_per_s},
                      {"mfu", r.mfu},
                      {"compute_s", r.compute_seconds},
                      {"comm_s", r.comm_seconds},
                      {"bubble_s", r.bubble_seconds},
                      {"memory_per_gpu_bytes", r.memory.total},
                      {"fits", r.fits}};
  add_train_command(j, runnable_command(setup, l));
  return j;
}

}  // namespace

int search_command(const std::vector<std::string>& args) {
  po::options_description options("search options");
  add_sim_setup_options(options);
  // clang-format off
  options.add_options()
      ("seq-len", po::value<int64_t>()->default_value(2048), "tokens per sample")
      ("global-batch", po::value<int64_t>()->default_value(1), "samples per step")
      ("max-micro-batch", po::value<int64_t>()->default_value(8), "largest micro-batch tried (powers of two)")
      ("sp-kinds", po::value<std::string>(), "SP kinds tried, comma-separated (default: lasp,lasp2,allgather,ulysses; GPT/Llama: ulysses)")
      ("co2-tau", po::value<std::string>()->default_value("0"), "CO2 τ values tried, comma-separated (0: synchronous DP), e.g. 0,4")
      ("zero", po::value<std::string>()->default_value("0,1,2,3"), "ZeRO stages tried where dp·sp > 1, comma-separated")
      ("gpipe", po::bool_switch(), "also try GPipe pipelines (1F1B always)")
      ("pp-chunks", po::value<std::string>()->default_value("1"), "model chunks per stage tried with 1F1B, e.g. 1,2,4 (> 1: interleaved)")
      ("top", po::value<int>()->default_value(10), "layouts shown")
      ("format", po::value<std::string>()->default_value("table"), "table|json");
  // clang-format on
  po::variables_map v;
  if (!parse_options("search", "[options]", args, options, v)) return 0;
  const std::string format = v["format"].as<std::string>();
  if (format != "table" && format != "json")
    user_error("--format {}: expected table or json", format);
  const int top = v["top"].as<int>();
  if (top < 1) user_error("--top {}: must be positive", top);
  const SimSetup setup = sim_setup_from(v);
  sim::SearchSpace space;
  space.seq_len = v["seq-len"].as<int64_t>();
  space.global_batch = v["global-batch"].as<int64_t>();
  space.max_micro_batch = v["max-micro-batch"].as<int64_t>();
  space.co2_taus = parse_taus(v["co2-tau"].as<std::string>());
  space.zero_stages = parse_zero_stages(v["zero"].as<std::string>());
  if (v.count("sp-kinds")) {
    for (const std::string& k : split_commas("sp-kinds", v["sp-kinds"].as<std::string>())) {
      space.sp_kinds.push_back(parse_sp_kind(k));
    }
  }
  if (v["gpipe"].as<bool>()) space.schedules.push_back(PipelineSchedule::GPipe);
  space.pp_chunks = parse_chunks(v["pp-chunks"].as<std::string>());
  space.grad_reduce_overlap = setup.grad_reduce_overlap;
  space.grad_reduce_bytes = setup.grad_reduce_bytes;
  space.grad_accumulate_add = setup.grad_accumulate_add;
  space.lasp_blocking = setup.lasp_blocking;
  const sim::ClusterSpec& cluster = setup.cluster;

  sim::SearchStats stats;
  const std::vector<sim::SearchResult> results =
      sim::search_layouts(setup.model, cluster, space, setup.cost(), &stats);
  if (results.empty()) {
    user_error("no valid layout of {} on {} GPUs at --seq-len {} and --global-batch {}: {}",
               setup.model.name(), cluster.gpus(), space.seq_len, space.global_batch,
               stats.first_rejection.empty()
                   ? "dp (GPUs / (tp · pp · sp)) never divides the global batch"
                   : stats.first_rejection);
  }
  if (!results.front().fits) {
    const sim::SearchResult& smallest = results.front();
    user_error("no layout fits: the smallest ({}) {}", sim::describe_layout(smallest.layout),
               smallest.memory_message);
  }
  const std::string explanation = sim::explain_winner(results);
  const size_t shown =
      std::min<size_t>(static_cast<size_t>(top), static_cast<size_t>(stats.fitting));

  if (format == "json") {
    nlohmann::json layouts = nlohmann::json::array();
    for (size_t i = 0; i < shown; ++i)
      layouts.push_back(layout_json(static_cast<int>(i) + 1, results[i], setup));
    const nlohmann::json j = {{"model", setup.model.name()},
                              {"gpus", cluster.gpus()},
                              {"gpu", cluster.gpu.name},
                              {"cost_source", setup.profile ? "profile" : "roofline"},
                              {"efficiency", efficiency_json(setup.efficiency)},
                              {"seq_len", space.seq_len},
                              {"global_batch", space.global_batch},
                              {"evaluated", stats.evaluated},
                              {"fitting", stats.fitting},
                              {"rejected", stats.rejected},
                              {"seconds", stats.seconds},
                              {"layouts_per_second", stats.layouts_per_second()},
                              {"layouts", layouts},
                              {"explanation", explanation}};
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{} on {} × {} {} ({} GPUs), {} tokens per sample, global batch {}{}; costs: {}\n",
             setup.model.name(), cluster.nodes, cluster.gpus_per_node, cluster.gpu.name,
             cluster.gpus(), space.seq_len, space.global_batch, setup.settings_note(),
             setup.cost_note());
  fmt::print("{:>4} {:>5} {:>7} {:>8} {:>14} {:>5} {:>9} {:>4} {:>5} {:>10} {:>12} {:>6} {:>8}\n",
             "rank", "dp", "tp", "pp", "sp", "micro", "recompute", "zero", "co2", "step ms",
             "tokens/GPU/s", "MFU %", "GiB/GPU");
  for (size_t i = 0; i < shown; ++i) {
    const sim::SearchResult& r = results[i];
    const sim::SimLayout& l = r.layout;
    fmt::print(
        "{:>4} {:>5} {:>7} {:>8} {:>14} {:>5} {:>9} {:>4} {:>5} {:>10.1f} {:>12.0f} {:>6.1f} "
        "{:>8.2f}\n",
        i + 1, l.dp, fmt::format("{}{}", l.tp, l.tp_sp ? "+sp" : ""),
        fmt::format("{}{}", l.pp,
                    l.pp > 1 && l.schedule == PipelineSchedule::GPipe ? " gpipe"
                    : l.pp_chunks > 1                                 ? fmt::format("×{}", l.pp_chunks)
                                                                      : ""),
        l.sp > 1 ? fmt::format("{} {}", l.sp, sp_kind_name(l.sp_kind)) : "1", l.micro_batch,
        recompute_name(l.recompute), l.zero, co2_name(l.co2_tau), r.step_seconds * 1e3,
        r.tokens_per_gpu_per_s, 100 * r.mfu, gib(r.memory.total));
  }
  fmt::print(
      "{} layouts evaluated, {} fit in {:.0f} GiB ({} combinations refused by the model) in {:.2f} "
      "s: "
      "{:.0f} layouts/s\n",
      stats.evaluated, stats.fitting, cluster.gpu.hbm_gib, stats.rejected, stats.seconds,
      stats.layouts_per_second());
  fmt::print("{}\n", explanation);
  // Plan → run: the best layouts' `linpar train` commands.
  for (size_t i = 0; i < std::min<size_t>(shown, 3); ++i) {
    fmt::print("layout {}:\n", i + 1);
    print_train_command(runnable_command(setup, results[i].layout));
  }
  return 0;
}

}  // namespace linpar::cli
