// What `linpar sim` and `linpar search` share: the model (a TransNormerLLM
// preset with the shape overrides of `linpar train`, or a GPT/Llama preset),
// the cluster (GPU and link presets, --hw-file INI, --hw section.key=value),
// the cost source (--profile, else the roofline), how gradients are
// reduced (--grad-reduce, --grad-reduce-dtype), and parsing of the layout
// names (--sp-kind, --recompute, --pp-schedule).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/options.h"
#include "cli/train_command.h"
#include "sim/hardware.h"
#include "sim/model.h"
#include "sim/profile_costs.h"
#include "sim/step.h"

namespace linpar::cli {

// --model with the TransNormer overrides or the GPT/Llama --attention-core, the
// cluster, --profile.
void add_sim_setup_options(po::options_description& options);

struct SimSetup {
  sim::SimModel model;
  sim::ClusterSpec cluster;
  std::optional<sim::MeasuredProfile> profile;
  sim::Efficiency efficiency;  // the defaults, or --hw efficiency.KEY=VALUE / --hw-file [efficiency]
  // --grad-reduce, --grad-reduce-dtype (sim::SimLayout's fields of the same names).
  bool grad_reduce_overlap = true;
  int64_t grad_reduce_bytes = 4;
  bool grad_accumulate_add = false;  // --grad-accumulate add (sim::SimLayout::grad_accumulate_add)
  bool lasp_blocking = false;  // --lasp-ring blocking (sim::SimLayout::lasp_blocking)
  // "; gradients reduced after backward in bf16; gradients accumulated by
  // autograd's add; LASP ring blocking" for what is not the default, else "".
  std::string settings_note() const;
  // "roofline" or "measured profile", then the efficiencies that differ from
  // the defaults: "roofline (efficiency.elementwise 0.38)".
  std::string cost_note() const;
  sim::CostModel cost() const {
    sim::CostModel c;
    c.efficiency = efficiency;
    if (profile) c.profile = &*profile;
    return c;
  }
};
// The efficiencies as JSON (`linpar sim/search --format json`, key "efficiency").
nlohmann::json efficiency_json(const sim::Efficiency& efficiency);

// UserError naming the value and the rule for bad options.
SimSetup sim_setup_from(const po::variables_map& v);

// The `linpar train` command of a layout of this setup's model (its
// unrunnable field says why the trainer cannot run it), or none for a
// GPT/Llama model (simulated only).
std::optional<TrainCommand> runnable_command(const SimSetup& setup, const sim::SimLayout& layout);
// "  run it: mpirun …" and "  slurm: sbatch …", or why it cannot run.
void print_train_command(const std::optional<TrainCommand>& command);
// The same as JSON keys of `j`: train_command, slurm_command ("" when not
// runnable) and not_runnable ("" when runnable).
void add_train_command(nlohmann::json& j, const std::optional<TrainCommand>& command);

}  // namespace linpar::cli
