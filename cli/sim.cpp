// linpar sim: predicts one training step of a layout on a cluster from the
// model's op plan (sim/step.h), as a table or JSON, with an optional
// Chrome/Perfetto trace of the simulated step. What is not simulated yet
// (sequence parallelism, recomputation, CO2, the memory model) is refused by
// name rather than guessed.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "sim/step.h"

namespace linpar::cli {

int sim_command(const std::vector<std::string>& args) {
  po::options_description options("sim options");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("gpu", po::value<std::string>()->default_value("h100"), "GPU preset: a100-40gb|a100-80gb|h100|h200")
      ("gpus-per-node", po::value<int>()->default_value(8), "GPUs per node")
      ("nodes", po::value<int>()->default_value(1), "nodes")
      ("inter-link", po::value<std::string>()->default_value("ib-ndr"), "node-to-node link: ib-hdr|ib-ndr|eth-80g|eth-100g|pcie4")
      ("nics-per-node", po::value<int>()->default_value(8), "NICs per node")
      ("dp", po::value<int>()->default_value(1), "data-parallel degree")
      ("tp", po::value<int>()->default_value(1), "tensor-parallel degree")
      ("tp-sp", po::bool_switch(), "Megatron sequence parallelism inside TP")
      ("pp", po::value<int>()->default_value(1), "pipeline-parallel degree")
      ("pp-schedule", po::value<std::string>()->default_value("1f1b"), "gpipe|1f1b")
      ("sp", po::value<int>()->default_value(1), "sequence-parallel degree (not simulated yet: 1)")
      ("zero", po::value<int>()->default_value(0), "0 or 1 (ZeRO-1)")
      ("recompute", po::value<std::string>()->default_value("none"), "none (selective/full not simulated yet)")
      ("co2-tau", po::value<int64_t>()->default_value(0), "CO2 rounds (not simulated yet: 0)")
      ("seq-len", po::value<int64_t>()->default_value(2048), "tokens per sample")
      ("micro-batch", po::value<int64_t>()->default_value(1), "samples per micro-batch")
      ("global-batch", po::value<int64_t>()->default_value(1), "samples per step")
      ("format", po::value<std::string>()->default_value("table"), "table|json")
      ("trace", po::value<std::string>(), "write a Chrome/Perfetto trace of the simulated step");
  // clang-format on
  po::variables_map v;
  if (!parse_options("sim", "[options]", args, options, v)) return 0;
  const ModelConfig model = model_config_from(v);
  if (v["sp"].as<int>() != 1) user_error("--sp {}: sequence parallelism is not simulated yet (use --sp 1)", v["sp"].as<int>());
  if (v["recompute"].as<std::string>() != "none") {
    user_error("--recompute {}: recomputation is not simulated yet (use none)", v["recompute"].as<std::string>());
  }
  if (v["co2-tau"].as<int64_t>() != 0) user_error("--co2-tau {}: CO2 is not simulated yet (use 0)", v["co2-tau"].as<int64_t>());
  const std::string format = v["format"].as<std::string>();
  if (format != "table" && format != "json") user_error("--format {}: expected table or json", format);
  const int zero = v["zero"].as<int>();
  if (zero != 0 && zero != 1) user_error("--zero {}: expected 0 or 1", zero);
  auto positive = [](const char* name, int64_t value) {
    if (value <= 0) user_error("{} {}: must be positive", name, value);
  };
  sim::SimLayout l;
  l.dp = v["dp"].as<int>();
  l.tp = v["tp"].as<int>();
  l.pp = v["pp"].as<int>();
  positive("--dp", l.dp);
  positive("--tp", l.tp);
  positive("--pp", l.pp);
  l.tp_sp = v["tp-sp"].as<bool>();
  l.zero = zero;
  l.schedule = pipeline_schedule_from_name(v["pp-schedule"].as<std::string>());
  l.seq_len = v["seq-len"].as<int64_t>();
  l.micro_batch = v["micro-batch"].as<int64_t>();
  l.global_batch = v["global-batch"].as<int64_t>();
  positive("--seq-len", l.seq_len);
  positive("--micro-batch", l.micro_batch);
  positive("--global-batch", l.global_batch);
  const sim::ClusterSpec cluster =
      sim::make_cluster(v["gpu"].as<std::string>(), v["gpus-per-node"].as<int>(), v["nodes"].as<int>(),
                        v["inter-link"].as<std::string>(), v["nics-per-node"].as<int>());
  const sim::StepPrediction p = sim::simulate_step(model, cluster, l);

  if (v.count("trace")) {
    const std::string path = v["trace"].as<std::string>(), temp = path + ".tmp";
    {
      std::ofstream out(temp);
      if (!out) user_error("--trace {}: cannot write the file", path);
      out << p.schedule.chrome_trace() << "\n";
    }
    std::filesystem::rename(temp, path);
  }
  if (format == "json") {
    const nlohmann::json j = {{"model", model.name},
                              {"gpus", cluster.gpus()},
                              {"layout", {{"dp", l.dp}, {"tp", l.tp}, {"pp", l.pp}, {"sp", 1}, {"zero", l.zero}}},
                              {"step_time_s", p.step_seconds},
                              {"tokens_per_gpu_per_s", p.tokens_per_gpu_per_s},
                              {"mfu", p.mfu},
                              {"compute_s", p.compute_seconds},
                              {"bubble_s", p.bubble_seconds},
                              {"model_flops_per_gpu", p.model_flops_per_gpu},
                              {"comm_bytes_per_step", p.comm_bytes_per_gpu * cluster.gpus()}};
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{} on {} × {} ({} GPUs): dp {}, tp {}{}, pp {} ({}), zero {}; {} × {} tokens per micro-batch, "
             "global batch {}\n",
             model.name, cluster.nodes, cluster.gpus_per_node, cluster.gpus(), l.dp, l.tp, l.tp_sp ? " (sp)" : "",
             l.pp, v["pp-schedule"].as<std::string>(), l.zero, l.micro_batch, l.seq_len, l.global_batch);
  fmt::print("  step time        {:10.3f} ms\n", p.step_seconds * 1e3);
  fmt::print("  tokens/GPU/s     {:10.0f}\n", p.tokens_per_gpu_per_s);
  fmt::print("  MFU              {:10.1f} %  (model FLOPs / datasheet bf16 peak)\n", 100 * p.mfu);
  fmt::print("  compute          {:10.3f} ms  (busiest stage)\n", p.compute_seconds * 1e3);
  fmt::print("  bubble + waits   {:10.3f} ms\n", p.bubble_seconds * 1e3);
  fmt::print("  sent per GPU     {:10.3f} GB\n", static_cast<double>(p.comm_bytes_per_gpu) / 1e9);
  fmt::print("  (memory per GPU: the memory model is not built yet)\n");
  return 0;
}

}  // namespace linpar::cli
