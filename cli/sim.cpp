// linpar sim: predicts one training step of a layout on a cluster from the
// model's op plan (sim/step.h) and its per-GPU memory (sim/memory.h), as a
// table or JSON with stable keys, with an optional Chrome/Perfetto trace of
// the simulated step.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/sim_options.h"
#include "core/error.h"

namespace linpar::cli {

namespace {
double gib(int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }
}  // namespace

int sim_command(const std::vector<std::string>& args) {
  po::options_description options("sim options");
  add_sim_setup_options(options);
  // clang-format off
  options.add_options()
      ("dp", po::value<int>()->default_value(1), "data-parallel degree")
      ("tp", po::value<int>()->default_value(1), "tensor-parallel degree")
      ("tp-sp", po::bool_switch(), "Megatron sequence parallelism inside TP")
      ("pp", po::value<int>()->default_value(1), "pipeline-parallel degree")
      ("pp-schedule", po::value<std::string>()->default_value("1f1b"), "gpipe|1f1b")
      ("pp-chunks", po::value<int>()->default_value(1), "model chunks per stage: > 1 is interleaved 1F1B (Megatron's virtual pipeline)")
      ("sp", po::value<int>()->default_value(1), "sequence-parallel degree")
      ("sp-kind", po::value<std::string>()->default_value("lasp"), "lasp|lasp2|allgather|ulysses (GPT/Llama: ulysses)")
      ("zero", po::value<int>()->default_value(0), "ZeRO stage: 0 (off), 1 (optimizer state), 2 (+ gradients) or 3 (+ parameters)")
      ("recompute", po::value<std::string>()->default_value("none"), "none|selective|full")
      ("co2-tau", po::value<int64_t>()->default_value(0), "CO2 local steps per outer round (0: synchronous DP)")
      ("co2-shard-outer", po::bool_switch(), "CO2 outer state sharded over the DP group (its host memory; as linpar train)")
      ("seq-len", po::value<int64_t>()->default_value(2048), "tokens per sample")
      ("micro-batch", po::value<int64_t>()->default_value(1), "samples per micro-batch")
      ("global-batch", po::value<int64_t>()->default_value(1), "samples per step")
      ("format", po::value<std::string>()->default_value("table"), "table|json")
      ("trace", po::value<std::string>(), "write a Chrome/Perfetto trace of the simulated step");
  // clang-format on
  po::variables_map v;
  if (!parse_options("sim", "[options]", args, options, v)) return 0;
  const std::string format = v["format"].as<std::string>();
  if (format != "table" && format != "json") user_error("--format {}: expected table or json", format);
  const SimSetup setup = sim_setup_from(v);
  sim::SimLayout l;
  l.dp = v["dp"].as<int>();
  l.tp = v["tp"].as<int>();
  l.pp = v["pp"].as<int>();
  l.sp = v["sp"].as<int>();
  l.sp_kind = parse_sp_kind(v["sp-kind"].as<std::string>());
  l.tp_sp = v["tp-sp"].as<bool>();
  l.zero = v["zero"].as<int>();
  l.recompute = recompute_from_name(v["recompute"].as<std::string>());
  l.co2_tau = v["co2-tau"].as<int64_t>();
  l.co2_shard_outer = v["co2-shard-outer"].as<bool>();
  l.schedule = pipeline_schedule_from_name(v["pp-schedule"].as<std::string>());
  l.pp_chunks = v["pp-chunks"].as<int>();
  l.seq_len = v["seq-len"].as<int64_t>();
  l.micro_batch = v["micro-batch"].as<int64_t>();
  l.global_batch = v["global-batch"].as<int64_t>();
  l.grad_reduce_overlap = setup.grad_reduce_overlap;
  l.grad_reduce_bytes = setup.grad_reduce_bytes;
  l.grad_accumulate_add = setup.grad_accumulate_add;
  l.lasp_blocking = setup.lasp_blocking;
  const sim::ClusterSpec& cluster = setup.cluster;
  const sim::StepPrediction p = sim::simulate_step(setup.model, cluster, l, setup.cost(), v.count("trace") > 0);

  if (v.count("trace")) {
    const std::string path = v["trace"].as<std::string>(), temp = path + ".tmp";
    {
      std::ofstream out(temp);
      if (!out) user_error("--trace {}: cannot write the file", path);
      out << p.chrome_trace() << "\n";
    }
    std::filesystem::rename(temp, path);
  }
  const sim::MemoryBreakdown& m = p.memory;
  const std::optional<TrainCommand> run = runnable_command(setup, l);
  if (format == "json") {
    nlohmann::json j = {{"model", setup.model.name()},
                        {"gpus", cluster.gpus()},
                        {"gpu", cluster.gpu.name},
                        {"cost_source", setup.profile ? "profile" : "roofline"},
                        {"efficiency", efficiency_json(setup.efficiency)},
                        {"layout",
                         {{"dp", l.dp},
                          {"tp", l.tp},
                          {"tp_sp", l.tp_sp},
                          {"pp", l.pp},
                          {"sp", l.sp},
                          {"sp_kind", sp_kind_name(l.sp_kind)},
                          {"zero", l.zero},
                          {"recompute", recompute_name(l.recompute)},
                          {"co2_tau", l.co2_tau},
                          {"pp_schedule", v["pp-schedule"].as<std::string>()},
                          {"pp_chunks", l.pp_chunks},
                          {"seq_len", l.seq_len},
                          {"micro_batch", l.micro_batch},
                          {"global_batch", l.global_batch},
                          {"grad_reduce", v["grad-reduce"].as<std::string>()},
                          {"grad_reduce_dtype", v["grad-reduce-dtype"].as<std::string>()},
                          {"grad_accumulate", v["grad-accumulate"].as<std::string>()},
                          {"lasp_ring", v["lasp-ring"].as<std::string>()}}},
                        {"step_time_s", p.step_seconds},
                        {"tokens_per_gpu_per_s", p.tokens_per_gpu_per_s},
                        {"mfu", p.mfu},
                        {"compute_s", p.compute_seconds},
                        {"comm_s", p.comm_seconds},
                        {"bubble_s", p.bubble_seconds},
                        {"model_flops_per_gpu", p.model_flops_per_gpu},
                        {"comm_bytes_per_step", p.comm_bytes_per_step},
                        {"comm_bytes_per_gpu", p.comm_bytes_per_gpu},
                        {"memory_per_gpu_bytes", m.total},
                        {"memory",
                         {{"parameters", m.parameters},
                          {"gradients", m.gradients},
                          {"optimizer_state", m.optimizer_state},
                          {"activations", m.activations},
                          {"workspace", m.workspace},
                          {"communication_buffers", m.communication_buffers},
                          {"co2_host", m.co2_state}}},
                        {"fits", p.fits}};
    add_train_command(j, run);
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{} on {} × {} {} ({} GPUs): dp {}, tp {}{}, pp {} ({}), sp {}{}, zero {}, recompute {}{}; "
             "{} × {} tokens per micro-batch, global batch {}{}; costs: {}\n",
             setup.model.name(), cluster.nodes, cluster.gpus_per_node, cluster.gpu.name, cluster.gpus(), l.dp, l.tp,
             l.tp_sp ? " (sp)" : "", l.pp,
             v["pp-schedule"].as<std::string>() + (l.pp_chunks > 1 ? fmt::format(", {} chunks interleaved", l.pp_chunks) : ""),
             l.sp,
             l.sp > 1 ? fmt::format(" ({})", sp_kind_name(l.sp_kind)) : "", l.zero, recompute_name(l.recompute),
             l.co2_tau > 0 ? fmt::format(", CO2 τ={}", l.co2_tau) : "", l.micro_batch, l.seq_len, l.global_batch,
             setup.settings_note(),
             setup.cost_note());
  fmt::print("  step time        {:10.3f} ms\n", p.step_seconds * 1e3);
  fmt::print("  tokens/GPU/s     {:10.0f}\n", p.tokens_per_gpu_per_s);
  fmt::print("  MFU              {:10.1f} %  (model FLOPs / datasheet bf16 peak)\n", 100 * p.mfu);
  fmt::print("  compute          {:10.3f} ms  (busiest stage)\n", p.compute_seconds * 1e3);
  fmt::print("  communication    {:10.3f} ms  (its comm stream, overlapped or not)\n", p.comm_seconds * 1e3);
  fmt::print("  bubble + waits   {:10.3f} ms\n", p.bubble_seconds * 1e3);
  fmt::print("  sent per GPU     {:10.3f} GB\n", static_cast<double>(p.comm_bytes_per_gpu) / 1e9);
  fmt::print("  memory per GPU   {:10.2f} GiB of {:.0f}{}\n", gib(m.total), cluster.gpu.hbm_gib,
             p.fits ? "" : "  — DOES NOT FIT: " + p.memory_message);
  fmt::print("    {}\n", sim::memory_summary(m));
  print_train_command(run);
  return 0;
}

}  // namespace linpar::cli
