// linpar convert: released TransNormerLLM weights (safetensors, HuggingFace
// names) <-> linpar checkpoints. Direction follows --in: .safetensors files (or
// a directory of them) are imported; a linpar checkpoint directory is exported.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/config_io.h"
#include "model/released_names.h"

namespace linpar::cli {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> safetensors_files(const std::string& input) {
  std::vector<std::string> files;
  if (fs::is_directory(input)) {
    for (const auto& entry : fs::directory_iterator(input)) {
      if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::path(input).extension() == ".safetensors") {
    files.push_back(input);
  }
  return files;
}

void import_safetensors(const std::vector<std::string>& files, const ModelConfig& config,
                        const std::string& out_dir) {
  std::vector<std::unique_ptr<SafetensorsReader>> readers;
  for (const std::string& file : files)
    readers.push_back(std::make_unique<SafetensorsReader>(file));
  TransNormerLLM model(config, /*seed=*/0, DType::F32);
  std::set<std::string> used;
  for (const NamePair& name : released_parameter_names(config)) {
    const SafetensorsReader* holder = nullptr;
    for (const auto& reader : readers) {
      if (reader->contains(name.released)) holder = reader.get();
    }
    if (holder == nullptr) {
      user_error(
          "convert: {} is missing from the safetensors input; does --model {} (layers {}, lrpe {}, "
          "tie-embeddings {}) describe these weights?",
          name.released, config.name, config.n_layers, lrpe_name(config.lrpe),
          config.tie_embeddings);
    }
    Tensor value = holder->read(name.released, DType::F32);
    if (value.shape() != name.released_shape) {
      user_error("convert: {} has shape {}, --model {} expects {}", name.released,
                 shape_string(value.shape()), config.name, shape_string(name.released_shape));
    }
    Parameter& p = model.params().get(name.linpar);
    p.value.copy_from(value.reshape(p.value.shape()));
    used.insert(name.released);
  }
  for (const auto& reader : readers) {
    for (const auto& entry : reader->entries()) {
      if (!used.count(entry.name))
        log::warn("convert: ignoring {} (not a parameter of this model)", entry.name);
    }
  }
  AdamW fresh(AdamWConfig{}, model.params());
  CheckpointMeta meta;
  meta.extra = {{"converted_from", files}};
  const std::string dir = save_checkpoint(out_dir, model, fresh, meta);
  log::info("wrote {} ({} parameters); train from it with --init-from {}", dir,
            config.parameter_count(), out_dir);
}

void export_checkpoint(const std::string& input, const std::string& out_file,
                       const std::string& disk_dtype) {
  std::string dir = input;
  if (!fs::exists(fs::path(dir) / "meta.json")) {
    const std::string latest = latest_checkpoint(dir);
    if (!latest.empty()) dir = latest;
  }
  const nlohmann::json meta = read_checkpoint_meta(dir);
  const ModelConfig config = config_from_json(meta.at("model"));
  TransNormerLLM model(config, 0, DType::F32);
  load_checkpoint(dir, model, nullptr);
  SafetensorsWriter writer;
  for (const NamePair& name : released_parameter_names(config)) {
    writer.add(name.released, model.params().get(name.linpar).value.reshape(name.released_shape),
               disk_dtype);
  }
  writer.set_metadata("format", "pt");  // what transformers' loader expects
  writer.set_metadata("linpar_model", config_to_json(config).dump());
  writer.write(out_file);
  log::info("wrote {} ({} tensors, {})", out_file, released_parameter_names(config).size(),
            disk_dtype);
}

}  // namespace

int convert_command(const std::vector<std::string>& args) {
  po::options_description options("convert options");
  add_model_options(options);
  options.add_options()("in", po::value<std::string>()->required(),
                        "a .safetensors file or a directory of them (import), or a linpar "
                        "checkpoint directory (export)")(
      "out", po::value<std::string>()->required(),
      "checkpoint directory (import) or .safetensors file (export)")(
      "dtype", po::value<std::string>()->default_value("bf16"),
      "export: dtype on disk, BF16, F16 or F32 (case-insensitive)");
  po::variables_map v;
  if (!parse_options("convert", "--in PATH --out PATH [--model PRESET ...]", args, options, v))
    return 0;
  const std::string input = v["in"].as<std::string>(), output = v["out"].as<std::string>();
  std::string disk_dtype = v["dtype"].as<std::string>();
  std::transform(disk_dtype.begin(), disk_dtype.end(), disk_dtype.begin(), ::toupper);
  if (disk_dtype != "BF16" && disk_dtype != "F16" && disk_dtype != "F32") {
    user_error("--dtype {}: expected bf16, f16 or f32", v["dtype"].as<std::string>());
  }
  if (!fs::exists(input)) user_error("--in {}: no such file or directory", input);

  const std::vector<std::string> files = safetensors_files(input);
  const bool is_checkpoint =
      fs::exists(fs::path(input) / "meta.json") || !latest_checkpoint(input).empty();
  if (!files.empty() && !is_checkpoint) {
    import_safetensors(files, model_config_from(v), output);
  } else if (is_checkpoint) {
    if (fs::path(output).extension() != ".safetensors")
      user_error("--out {}: exporting writes a .safetensors file", output);
    export_checkpoint(input, output, disk_dtype);
  } else {
    user_error("--in {}: neither .safetensors files nor a linpar checkpoint", input);
  }
  return 0;
}

}  // namespace linpar::cli
