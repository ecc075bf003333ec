// linpar inspect DIR: what a checkpoint holds (metadata, then every dataset of
// every rank file with its shard shape, global shape and offset).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/hdf5_file.h"
#include "model/checkpoint.h"
#include "model/config_io.h"

namespace linpar::cli {

int inspect_command(const std::vector<std::string>& args) {
  po::options_description options("inspect options");
  options.add_options()(
      "checkpoint", po::value<std::string>()->required(),
      "checkpoint directory (a step_N directory, or a --ckpt-dir: its newest step)");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map v;
  if (!parse_options("inspect", "CHECKPOINT_DIR", args, options, v, &positional)) return 0;

  std::string dir = v["checkpoint"].as<std::string>();
  if (!std::filesystem::exists(std::filesystem::path(dir) / "meta.json")) {
    const std::string latest = latest_checkpoint(dir);
    if (!latest.empty()) dir = latest;
  }
  const nlohmann::json meta = read_checkpoint_meta(dir);
  const ModelConfig config = config_from_json(meta.at("model"));
  fmt::print("checkpoint: {}\n", dir);
  fmt::print("format: {}\nstep: {}\n", meta.at("format").get<std::string>(),
             meta.at("step").get<int64_t>());
  fmt::print("model: {} (layers {}, width {}, heads {}, glu_dim {}, vocab {})\n", config.name,
             config.n_layers, config.width, config.n_heads, config.glu_dim, config.vocab_size);
  fmt::print("parameters: {}\n", config.parameter_count());
  fmt::print("layout: {}\n", meta.at("layout").dump());
  fmt::print("optimizer: {}\n", meta.at("optimizer").dump());
  fmt::print("data: {}\n", meta.at("data").dump());
  for (const auto& name : meta.at("files")) {
    const std::string file_name = name.get<std::string>();
    Hdf5File file = Hdf5File::open_read((std::filesystem::path(dir) / file_name).string());
    const auto datasets = file.dataset_names();
    fmt::print("{}: {} datasets\n", file_name, datasets.size());
    for (const std::string& dataset : datasets) {
      const auto info = file.info(dataset);
      fmt::print("  {:<48} {:<5} shard {:<14} of {:<14} at {}\n", dataset, dtype_name(info.dtype),
                 shape_string(info.shard_shape), shape_string(info.global_shape),
                 shape_string(info.offset));
    }
  }
  return 0;
}

}  // namespace linpar::cli
