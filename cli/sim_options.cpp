#include "cli/sim_options.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "sim/hardware_config.h"
#include "sim/softmax_transformer.h"

namespace linpar::cli {

void add_sim_setup_options(po::options_description& options) {
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("attention-core", po::value<std::string>(), "GPT/Llama presets: attention core flash|unfused (default flash)")
      ("gpu", po::value<std::string>()->default_value("h100"), "GPU preset: a100-40gb|a100-80gb|h100|h200")
      ("gpus-per-node", po::value<int>()->default_value(8), "GPUs per node")
      ("nodes", po::value<int>()->default_value(1), "nodes")
      ("inter-link", po::value<std::string>()->default_value("ib-ndr"), "node-to-node link: ib-hdr|ib-ndr|eth-80g|eth-100g|pcie4")
      ("nics-per-node", po::value<int>()->default_value(8), "NICs per node")
      ("hw-file", po::value<std::string>(), "INI file overriding hardware fields ([gpu], [intra], [inter], [cluster], [efficiency]; docs/simulator.md)")
      ("hw", po::value<std::vector<std::string>>()->composing(), "override one hardware field, e.g. gpu.bf16_tflops=700 or efficiency.elementwise=0.4 (repeatable; after --hw-file)")
      ("profile", po::value<std::string>(), "measured rates from `linpar profile` (JSON) instead of the roofline where it has them")
      ("grad-reduce", po::value<std::string>()->default_value("overlap"), "gradient averaging: overlap (buckets during the last backward, linpar and PyTorch DDP) or after-backward (Megatron-LM without --overlap-grad-reduce)")
      ("grad-reduce-dtype", po::value<std::string>()->default_value("f32"), "element type of the gradient reduction: f32 (linpar) or bf16/fp16")
      ("grad-accumulate", po::value<std::string>()->default_value("fused"), "how micro-batches' weight gradients are summed: fused (in the weight-gradient products: linpar, Megatron-LM's gradient accumulation fusion) or add (autograd adds each one after the first in place: Megatron-LM of 2021)")
      ("lasp-ring", po::value<std::string>()->default_value("overlap"), "how a LASP rank waits for its neighbour's state: overlap (linpar: the intra-chunk kernel first) or blocking (the published LASP code: a blocking receive before the attention kernels, a blocking send after)");
  // clang-format on
}

namespace {
// --attention-core: FlashAttention (true) or the unfused core of Megatron-LM
// before it (false), which the published runs of 2021-22 used
// (sim/softmax_transformer.h).
bool flash_attention_from_name(const std::string& core) {
  if (core == "flash") return true;
  if (core == "unfused") return false;
  user_error("--attention-core {}: expected flash or unfused", core);
}

// The model: a GPT/Llama preset (no shape overrides; --attention-core) or a
// TransNormerLLM preset with `linpar train`'s overrides.
sim::SimModel model_from(const po::variables_map& v) {
  const std::string name = v["model"].as<std::string>();
  if (std::optional<SoftmaxTransformerConfig> s = find_softmax_preset(name)) {
    for (const char* o : {"layers", "width", "heads", "glu-dim", "vocab-size", "lrpe", "decay", "tie-embeddings",
                          "attention-block"}) {
      if (v.count(o)) user_error("--{}: overrides a TransNormerLLM preset; {} is a softmax transformer preset", o, name);
    }
    if (v.count("attention-core")) {
      s->flash_attention = flash_attention_from_name(v["attention-core"].as<std::string>());
    }
    return sim::SimModel(*s);
  }
  bool transnormer = false;
  for (const PresetInfo& p : model_presets()) transnormer = transnormer || p.config.name == name;
  if (!transnormer) return sim::SimModel::from_preset(name);  // UserError listing both families
  if (v.count("attention-core")) {
    user_error("--attention-core: picks a softmax transformer's attention kernel; {} is a "
               "TransNormerLLM preset (lightning attention)",
               name);
  }
  return sim::SimModel(model_config_from(v));
}
}  // namespace

std::string SimSetup::settings_note() const {
  std::string note;
  if (!grad_reduce_overlap || grad_reduce_bytes != 4) {
    note = fmt::format("; gradients reduced {} in {}", grad_reduce_overlap ? "overlapped" : "after backward",
                       grad_reduce_bytes == 4 ? "f32" : "2-byte elements");
  }
  if (grad_accumulate_add) note += "; gradients accumulated by autograd's add";
  if (lasp_blocking) note += "; LASP ring blocking";
  return note;
}

std::string SimSetup::cost_note() const {
  const auto values = sim::efficiency_values(efficiency), defaults = sim::efficiency_values(sim::Efficiency{});
  std::string changed;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].second == defaults[i].second) continue;
    changed += fmt::format("{}efficiency.{} {:g}", changed.empty() ? "" : ", ", values[i].first, values[i].second);
  }
  const std::string source = profile ? "measured profile" : "roofline";
  return changed.empty() ? source : fmt::format("{} ({})", source, changed);
}

nlohmann::json efficiency_json(const sim::Efficiency& efficiency) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : sim::efficiency_values(efficiency)) j[key] = value;
  return j;
}

SimSetup sim_setup_from(const po::variables_map& v) {
  sim::ClusterSpec cluster =
      sim::make_cluster(v["gpu"].as<std::string>(), v["gpus-per-node"].as<int>(), v["nodes"].as<int>(),
                        v["inter-link"].as<std::string>(), v["nics-per-node"].as<int>());
  sim::Efficiency efficiency;
  if (v.count("hw-file")) sim::apply_hardware_ini(v["hw-file"].as<std::string>(), cluster, efficiency);
  if (v.count("hw")) {
    for (const std::string& a : v["hw"].as<std::vector<std::string>>()) {
      sim::apply_hardware_override(a, cluster, efficiency);
    }
  }
  sim::validate(cluster);
  std::optional<sim::MeasuredProfile> profile;
  if (v.count("profile")) profile = sim::load_profile(v["profile"].as<std::string>());
  SimSetup setup{model_from(v), cluster, std::move(profile), efficiency};
  const std::string reduce = v["grad-reduce"].as<std::string>(), dtype = v["grad-reduce-dtype"].as<std::string>();
  if (reduce != "overlap" && reduce != "after-backward") {
    user_error("--grad-reduce {}: expected overlap or after-backward", reduce);
  }
  setup.grad_reduce_overlap = reduce == "overlap";
  if (dtype == "f32") {
    setup.grad_reduce_bytes = 4;
  } else if (dtype == "bf16" || dtype == "fp16") {
    setup.grad_reduce_bytes = 2;
  } else {
    user_error("--grad-reduce-dtype {}: expected f32, bf16 or fp16", dtype);
  }
  const std::string accumulate = v["grad-accumulate"].as<std::string>();
  if (accumulate != "fused" && accumulate != "add") {
    user_error("--grad-accumulate {}: expected fused or add", accumulate);
  }
  setup.grad_accumulate_add = accumulate == "add";
  const std::string ring = v["lasp-ring"].as<std::string>();
  if (ring != "overlap" && ring != "blocking") user_error("--lasp-ring {}: expected overlap or blocking", ring);
  setup.lasp_blocking = ring == "blocking";
  return setup;
}

std::optional<TrainCommand> runnable_command(const SimSetup& setup, const sim::SimLayout& layout) {
  if (!setup.model.is_transnormer()) return std::nullopt;
  return train_command(setup.model.transnormer(), layout, setup.cluster, setup.settings_note());
}

void add_train_command(nlohmann::json& j, const std::optional<TrainCommand>& command) {
  const bool runs = command && command->unrunnable.empty();
  j["train_command"] = runs ? command->mpirun : "";
  j["slurm_command"] = runs ? command->slurm : "";
  j["not_runnable"] =
      command ? command->unrunnable : "a softmax transformer: linpar trains TransNormerLLM";
}

void print_train_command(const std::optional<TrainCommand>& command) {
  if (!command) {
    fmt::print("  run it: simulated only (linpar trains TransNormerLLM)\n");
  } else if (!command->unrunnable.empty()) {
    fmt::print("  run it: not by linpar train yet: {}\n", command->unrunnable);
  } else {
    fmt::print("  run it: {}\n  slurm:  {}\n", command->mpirun, command->slurm);
  }
}

}  // namespace linpar::cli
