// Plan → run: the `linpar train` command that runs a layout `linpar sim` or
// `linpar search` priced, on the cluster it was priced for (one rank per
// GPU, TP innermost: ProcessGrid's order). Built from the layout's fields
// alone, and checked by the trainer's own validate_train_options, so a
// layout the trainer cannot run says why instead of printing a command.
#pragma once

#include <string>

#include "model/config.h"
#include "sim/hardware.h"
#include "sim/step.h"

namespace linpar::cli {

struct TrainCommand {
  std::string flags;  // the `linpar train` options: model, layout, batch, device, dtype
  std::string
      mpirun;  // mpirun -np N [--hostfile HOSTFILE] --map-by ppr:G:node build/cli/linpar train …
  std::string slurm;       // sbatch --nodes K --ntasks-per-node G scripts/launch/slurm.sbatch …
  std::string unrunnable;  // non-empty: why `linpar train` cannot run the layout (then no command)
};

// `--model NAME` and the shape overrides that make `config` from its preset.
std::string model_flags(const ModelConfig& config);

// `settings_note`: the simulated-only settings in use (SimSetup::settings_note;
// the trainer runs its own gradient reduction), said beside the command.
TrainCommand train_command(const ModelConfig& model, const sim::SimLayout& layout,
                           const sim::ClusterSpec& cluster, const std::string& settings_note = "");

}  // namespace linpar::cli
