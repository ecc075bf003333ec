#include "cli/train_command.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/config_io.h"
#include "parallel/trainer.h"

namespace linpar::cli {

std::string model_flags(const ModelConfig& c) {
  const ModelConfig preset = preset_config(c.name);
  std::string out = fmt::format("--model {}", c.name);
  auto field = [&](const char* flag, int64_t mine, int64_t theirs) {
    if (mine != theirs) out += fmt::format(" --{} {}", flag, mine);
  };
  field("layers", c.n_layers, preset.n_layers);
  field("width", c.width, preset.width);
  field("heads", c.n_heads, preset.n_heads);
  field("glu-dim", c.glu_dim, preset.glu_dim);
  field("vocab-size", c.vocab_size, preset.vocab_size);
  field("attention-block", c.attention_block, preset.attention_block);
  if (c.lrpe != preset.lrpe) out += fmt::format(" --lrpe {}", lrpe_name(c.lrpe));
  if (c.decay != preset.decay) out += fmt::format(" --decay {}", decay_name(c.decay));
  if (c.tie_embeddings != preset.tie_embeddings)
    out += fmt::format(" --tie-embeddings {}", c.tie_embeddings ? "true" : "false");
  return out;
}

TrainCommand train_command(const ModelConfig& model, const sim::SimLayout& l,
                           const sim::ClusterSpec& cluster, const std::string& settings_note) {
  TrainCommand c;
  // What the trainer would be given: the layout as it is, on the GPU, in
  // the simulated element type (bf16 compute with f32 masters, or f32).
  TrainOptions o;
  o.model = model;
  o.layout = static_cast<const Layout&>(l);
  o.device = Device::CUDA;
  o.dtype = l.element_bytes == 2 ? DType::BF16 : l.element_bytes == 4 ? DType::F32 : DType::F64;
  try {
    validate_train_options(o);
  } catch (const UserError& e) {
    c.unrunnable = e.what();
    return c;
  }
  c.flags = fmt::format(
      "{} --device cuda --dtype {} --dp {} --tp {}{} --pp {} --pp-schedule {} --sp {} --sp-kind {} "
      "--zero {} --recompute {}{} --seq-len {} --micro-batch {} --global-batch {}",
      model_flags(model), dtype_name(o.dtype), l.dp, l.tp, l.tp_sp ? " --tp-sp" : "", l.pp,
      pipeline_schedule_name(l.schedule), l.sp, sp_kind_name(l.sp_kind), l.zero,
      recompute_name(l.recompute), l.co2_tau > 0 ? fmt::format(" --co2-tau {}", l.co2_tau) : "",
      l.seq_len, l.micro_batch, l.global_batch);
  if (l.pp_chunks > 1) c.flags += fmt::format(" --pp-chunks {}", l.pp_chunks);
  const int ranks = l.world();
  c.mpirun =
      fmt::format("mpirun -np {}{} --map-by ppr:{}:node build/cli/linpar train {}", ranks,
                  cluster.nodes > 1 ? " --hostfile HOSTFILE" : "", cluster.gpus_per_node, c.flags);
  c.slurm = fmt::format("sbatch --nodes {} --ntasks-per-node {} scripts/launch/slurm.sbatch {}",
                        cluster.nodes, cluster.gpus_per_node, c.flags);
  if (!settings_note.empty()) {
    const std::string note = fmt::format(
        "  # the trainer reduces gradients its own way: the simulated-only settings ({}) are not "
        "in it",
        settings_note.substr(settings_note.find_first_not_of("; ")));
    c.mpirun += note;
    c.slurm += note;
  }
  return c;
}

}  // namespace linpar::cli
