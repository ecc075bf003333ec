#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_io.h"
#include "model/config_io.h"

namespace linpar {

namespace fs = std::filesystem;

std::string rank_file_name(int rank) { return fmt::format("rank_{:05d}.h5", rank); }

namespace {
fs::path final_dir(const std::string& ckpt_dir, int64_t step) {
  return fs::path(ckpt_dir) / fmt::format("step_{:08d}", step);
}
}  // namespace

std::string checkpoint_temp_dir(const std::string& ckpt_dir, int64_t step) {
  return (fs::path(ckpt_dir) / fmt::format(".step_{:08d}.tmp", step)).string();
}

std::string begin_checkpoint(const std::string& ckpt_dir, int64_t step) {
  std::error_code ec;
  fs::create_directories(ckpt_dir, ec);
  if (ec) user_error("--ckpt-dir {}: cannot create it: {}", ckpt_dir, ec.message());
  if (fs::exists(final_dir(ckpt_dir, step))) {
    user_error("checkpoint {} exists already; refusing to overwrite it",
               final_dir(ckpt_dir, step).string());
  }
  const std::string temp = checkpoint_temp_dir(ckpt_dir, step);
  fs::remove_all(temp);
  fs::create_directories(temp);
  return temp;
}

std::string commit_checkpoint(const std::string& ckpt_dir, int64_t step,
                              const nlohmann::json& meta) {
  const std::string temp = checkpoint_temp_dir(ckpt_dir, step);
  write_file_atomically((fs::path(temp) / "meta.json").string(),
                        [&](std::ostream& out) { out << meta.dump(2) << "\n"; });
  const fs::path target = final_dir(ckpt_dir, step);
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) user_error("cannot rename {} to {}: {}", temp, target.string(), ec.message());
  return target.string();
}

nlohmann::json checkpoint_meta(const TransNormerLLM& model, const CheckpointMeta& meta,
                               int64_t optimizer_steps) {
  return {{"format", kCheckpointFormat},
          {"step", meta.step},
          {"model", config_to_json(model.config())},
          {"dtype", std::string(dtype_name(model.dtype()))},
          {"optimizer", {{"name", "adamw"}, {"steps_taken", optimizer_steps}}},
          {"data", {{"position", meta.data_position}}},
          {"extra", meta.extra}};
}

void write_parameters(Hdf5File& file, const ParameterSet& params) {
  for (const Parameter& p : params.all()) {
    file.write_shard("params/" + p.name, p.value_box(), p.global_shape, p.offset);
  }
}

void write_optimizer_state(Hdf5File& file, const ParameterSet& params, const std::vector<Tensor>& m,
                           const std::vector<Tensor>& v) {
  size_t index = 0;
  for (const Parameter& p : params.all()) {
    file.write_shard("optimizer/m/" + p.name, m[index].reshape(p.box_shape), p.global_shape,
                     p.offset);
    file.write_shard("optimizer/v/" + p.name, v[index].reshape(p.box_shape), p.global_shape,
                     p.offset);
    ++index;
  }
}

void read_parameter_box(const CheckpointReader& reader, const std::string& dataset,
                        const Parameter& p, Tensor& target) {
  target.copy_from(reader.read(dataset, p.global_shape, p.offset, p.box_shape, target.dtype())
                       .reshape(target.shape()));
}

std::string save_checkpoint(const std::string& ckpt_dir, const TransNormerLLM& model,
                            const AdamW& optimizer, const CheckpointMeta& meta) {
  const std::string temp = begin_checkpoint(ckpt_dir, meta.step);
  {
    Hdf5File file = Hdf5File::create((fs::path(temp) / rank_file_name(0)).string());
    write_parameters(file, model.params());
    write_optimizer_state(file, model.params(), optimizer.first_moments(),
                          optimizer.second_moments());
  }
  nlohmann::json json = checkpoint_meta(model, meta, optimizer.steps_taken());
  json["layout"] = {{"dp", 1}, {"tp", 1}, {"pp", 1}, {"sp", 1}, {"zero", 0}};
  json["files"] = {rank_file_name(0)};
  return commit_checkpoint(ckpt_dir, meta.step, json);
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

std::string resolve_checkpoint_dir(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "meta.json")) return dir;
  const std::string latest = latest_checkpoint(dir);
  return latest.empty() ? dir : latest;
}

nlohmann::json read_checkpoint_meta(const std::string& dir) {
  const fs::path meta_path = fs::path(dir) / "meta.json";
  if (!fs::is_directory(dir)) user_error("checkpoint {}: no such directory", dir);
  std::ifstream in(meta_path);
  if (!in) user_error("checkpoint {}: meta.json is missing", dir);
  nlohmann::json json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_discarded()) user_error("checkpoint {}: meta.json is not valid JSON", dir);
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

CheckpointReader::CheckpointReader(const std::string& dir)
    : dir_(dir), meta_(read_checkpoint_meta(dir)) {
  for (const auto& name : meta_.at("files")) {
    files_.push_back(std::make_unique<Hdf5File>(
        Hdf5File::open_read((fs::path(dir) / name.get<std::string>()).string())));
  }
}

CheckpointMeta CheckpointReader::run_state() const {
  CheckpointMeta state;
  state.step = meta_.at("step").get<int64_t>();
  state.data_position = meta_.at("data").at("position").get<int64_t>();
  state.extra = meta_.value("extra", nlohmann::json::object());
  return state;
}

Tensor CheckpointReader::read(const std::string& dataset, const Shape& global_shape,
                              const Shape& begin, const Shape& count, DType dtype) const {
  std::vector<const Hdf5File*> holders;
  for (const auto& file : files_) {
    if (!file->has(dataset)) continue;
    const auto info = file->info(dataset);
    if (info.global_shape != global_shape) {
      user_error("checkpoint {}: {} has global shape {}, the model expects {}", dir_, dataset,
                 shape_string(info.global_shape), shape_string(global_shape));
    }
    holders.push_back(file.get());
  }
  if (holders.empty()) user_error("checkpoint {}: dataset {} is missing", dir_, dataset);
  return read_global_box(holders, dataset, begin, count, dtype);
}

void CheckpointReader::read_whole(const std::string& dataset, Tensor& target) const {
  target.copy_from(read(dataset, target.shape(), Shape(target.shape().size(), 0), target.shape(),
                        target.dtype()));
}

CheckpointMeta load_checkpoint(const std::string& dir, TransNormerLLM& model, AdamW* optimizer) {
  CheckpointReader reader(dir);
  check_same_architecture(config_from_json(reader.meta().at("model")), model.config(),
                          "checkpoint " + dir);
  size_t index = 0;
  for (Parameter& p : model.params().all()) {
    read_parameter_box(reader, "params/" + p.name, p, p.value);
    if (optimizer != nullptr) {
      read_parameter_box(reader, "optimizer/m/" + p.name, p, optimizer->first_moments()[index]);
      read_parameter_box(reader, "optimizer/v/" + p.name, p, optimizer->second_moments()[index]);
    }
    ++index;
  }
  if (optimizer != nullptr) {
    optimizer->set_steps_taken(reader.meta().at("optimizer").at("steps_taken").get<int64_t>());
  }
  return reader.run_state();
}

}  // namespace linpar
