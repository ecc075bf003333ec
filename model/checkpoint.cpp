#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/hdf5_file.h"
#include "model/config_io.h"

namespace linpar {

namespace fs = std::filesystem;

namespace {

std::string rank_file_name(int rank) { return fmt::format("rank_{:05d}.h5", rank); }

void write_json(const fs::path& path, const nlohmann::json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) user_error("cannot write {}", path.string());
}

}  // namespace

std::string save_checkpoint(const std::string& ckpt_dir, const TransNormerLLM& model,
                            const AdamW& optimizer, const CheckpointMeta& meta) {
  const fs::path final_dir = fs::path(ckpt_dir) / fmt::format("step_{:08d}", meta.step);
  const fs::path temp_dir = fs::path(ckpt_dir) / fmt::format(".step_{:08d}.tmp", meta.step);
  std::error_code ec;
  fs::create_directories(ckpt_dir, ec);
  if (ec) user_error("--ckpt-dir {}: cannot create it: {}", ckpt_dir, ec.message());
  if (fs::exists(final_dir))
    user_error("checkpoint {} exists already; refusing to overwrite it", final_dir.string());
  fs::remove_all(temp_dir);
  fs::create_directories(temp_dir);

  {
    Hdf5File file = Hdf5File::create((temp_dir / rank_file_name(0)).string());
    const auto& moments_m = optimizer.first_moments();
    const auto& moments_v = optimizer.second_moments();
    size_t index = 0;
    for (const Parameter& p : model.params().all()) {
      // One process holds every tensor whole: offset 0, global shape = its shape.
      file.write_tensor("params/" + p.name, p.value);
      file.write_tensor("optimizer/m/" + p.name, moments_m[index]);
      file.write_tensor("optimizer/v/" + p.name, moments_v[index]);
      ++index;
    }
    file.flush();
  }

  nlohmann::json json = {
      {"format", kCheckpointFormat},
      {"step", meta.step},
      {"model", config_to_json(model.config())},
      {"dtype", std::string(dtype_name(model.dtype()))},
      {"layout", {{"dp", 1}, {"tp", 1}, {"pp", 1}, {"sp", 1}}},
      {"files", {rank_file_name(0)}},
      {"optimizer", {{"name", "adamw"}, {"steps_taken", optimizer.steps_taken()}}},
      {"data", {{"position", meta.data_position}}},
      {"extra", meta.extra},
  };
  write_json(temp_dir / "meta.json", json);
  fs::rename(temp_dir, final_dir, ec);
  if (ec)
    user_error("cannot rename {} to {}: {}", temp_dir.string(), final_dir.string(), ec.message());
  return final_dir.string();
}

std::string latest_checkpoint(const std::string& ckpt_dir) {
  if (!fs::is_directory(ckpt_dir)) return "";
  std::vector<std::string> steps;
  for (const auto& entry : fs::directory_iterator(ckpt_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("step_", 0) == 0) steps.push_back(entry.path().string());
  }
  if (steps.empty()) return "";
  return *std::max_element(steps.begin(), steps.end());  // zero-padded: lexical = numeric
}

nlohmann::json read_checkpoint_meta(const std::string& dir) {
  const fs::path meta_path = fs::path(dir) / "meta.json";
  if (!fs::is_directory(dir)) user_error("checkpoint {}: no such directory", dir);
  std::ifstream in(meta_path);
  if (!in) user_error("checkpoint {}: meta.json is missing", dir);
  nlohmann::json json;
  try {
    in >> json;
  } catch (const nlohmann::json::exception& e) {
    user_error("checkpoint {}: meta.json is not valid JSON ({})", dir, e.what());
  }
  if (!json.is_object() || json.value("format", "") != kCheckpointFormat) {
    user_error("checkpoint {}: meta.json is not a {} file", dir, kCheckpointFormat);
  }
  for (const char* key : {"step", "model", "files", "optimizer", "data", "layout"}) {
    if (!json.contains(key)) user_error("checkpoint {}: meta.json lacks '{}'", dir, key);
  }
  for (const auto& file : json.at("files")) {
    if (!fs::exists(fs::path(dir) / file.get<std::string>())) {
      user_error("checkpoint {}: shard file {} is missing", dir, file.get<std::string>());
    }
  }
  return json;
}

CheckpointMeta load_checkpoint(const std::string& dir, TransNormerLLM& model, AdamW* optimizer) {
  const nlohmann::json json = read_checkpoint_meta(dir);
  check_same_architecture(config_from_json(json.at("model")), model.config(), "checkpoint " + dir);

  std::vector<std::unique_ptr<Hdf5File>> files;
  std::vector<const Hdf5File*> views;
  for (const auto& name : json.at("files")) {
    files.push_back(std::make_unique<Hdf5File>(
        Hdf5File::open_read((fs::path(dir) / name.get<std::string>()).string())));
    views.push_back(files.back().get());
  }
  // Every tensor is read as the global box this rank holds (here: all of it);
  // read_global_box assembles it from whichever shards of the saved layout cover it.
  auto read_into = [&](const std::string& dataset, Tensor& target) {
    if (!files.front()->has(dataset))
      user_error("checkpoint {}: dataset {} is missing", dir, dataset);
    const auto info = files.front()->info(dataset);
    if (info.global_shape != target.shape()) {
      user_error("checkpoint {}: {} has global shape {}, the model expects {}", dir, dataset,
                 shape_string(info.global_shape), shape_string(target.shape()));
    }
    Shape begin(target.shape().size(), 0);
    Tensor value = read_global_box(views, dataset, begin, target.shape(), target.dtype());
    target.copy_from(value);
  };
  size_t index = 0;
  for (Parameter& p : model.params().all()) {
    read_into("params/" + p.name, p.value);
    if (optimizer != nullptr) {
      read_into("optimizer/m/" + p.name, optimizer->first_moments()[index]);
      read_into("optimizer/v/" + p.name, optimizer->second_moments()[index]);
    }
    ++index;
  }
  CheckpointMeta meta;
  meta.step = json.at("step").get<int64_t>();
  meta.data_position = json.at("data").at("position").get<int64_t>();
  meta.extra = json.value("extra", nlohmann::json::object());
  if (optimizer != nullptr)
    optimizer->set_steps_taken(json.at("optimizer").at("steps_taken").get<int64_t>());
  return meta;
}

}  // namespace linpar
