// Checkpoints (DESIGN.md, "Files and formats"): a directory per step holding
// one HDF5 file per rank with that rank's shards (each dataset annotated with
// its global shape and offset) and meta.json (step, config, layout, optimizer,
// data position, seed). Written under a temporary name and renamed when
// complete, so a directory named step_N is always whole.
//
// Datasets: params/<name>, optimizer/m/<name> and optimizer/v/<name>, each the
// box of the global tensor this rank holds (Parameter::global_shape, offset,
// box_shape), so any layout reads the boxes it needs from any other's files.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/hdf5_file.h"
#include "model/optimizer.h"
#include "model/transnormer.h"

namespace linpar {

inline constexpr const char* kCheckpointFormat = "linpar-checkpoint-1";

struct CheckpointMeta {
  int64_t step = 0;           // optimizer steps completed
  int64_t data_position = 0;  // samples drawn by the training data loader
  nlohmann::json extra;       // run options worth recording (schedule, seed, ...)
};

std::string rank_file_name(int rank);  // rank_00003.h5

// The three phases of writing one, for any number of ranks: the first rank
// begins (creates <ckpt_dir>/.step_N.tmp, refusing an existing step_N), every
// writing rank writes its file into it, the first rank commits (meta.json, then
// the rename) after all have written.
std::string begin_checkpoint(const std::string& ckpt_dir, int64_t step);  // returns the temp dir
std::string checkpoint_temp_dir(const std::string& ckpt_dir, int64_t step);
std::string commit_checkpoint(const std::string& ckpt_dir, int64_t step,
                              const nlohmann::json& meta);
// meta.json's common fields; the caller adds layout and files.
nlohmann::json checkpoint_meta(const TransNormerLLM& model, const CheckpointMeta& meta,
                               int64_t optimizer_steps);

// Every parameter's box, and the AdamW moments of every parameter (m[i], v[i]
// hold parameter i's moments, any shape with its number of elements).
void write_parameters(Hdf5File& file, const ParameterSet& params);
void write_optimizer_state(Hdf5File& file, const ParameterSet& params, const std::vector<Tensor>& m,
                           const std::vector<Tensor>& v);

// One process, plain AdamW: all three phases (convert and tests use it).
std::string save_checkpoint(const std::string& ckpt_dir, const TransNormerLLM& model,
                            const AdamW& optimizer, const CheckpointMeta& meta);

// The newest complete step directory under ckpt_dir, or "" when there is none.
std::string latest_checkpoint(const std::string& ckpt_dir);
// `dir` itself when it holds meta.json, else its newest step directory.
std::string resolve_checkpoint_dir(const std::string& dir);

// Reads and validates meta.json (format, files present); UserError naming the
// directory and the problem otherwise.
nlohmann::json read_checkpoint_meta(const std::string& dir);

// Every rank file of a checkpoint, open, for slice reads under any layout.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& dir);
  const nlohmann::json& meta() const { return meta_; }
  CheckpointMeta run_state() const;
  // The box [begin, begin + count) of a global dataset (UserError if missing,
  // of another global shape than `global_shape`, or not covered).
  Tensor read(const std::string& dataset, const Shape& global_shape, const Shape& begin,
              const Shape& count, DType dtype) const;
  void read_whole(const std::string& dataset, Tensor& target) const;  // global shape = target's

 private:
  std::string dir_;
  nlohmann::json meta_;
  std::vector<std::unique_ptr<Hdf5File>> files_;
};

// Reads parameter p's box of `dataset` into target (p.value, or a moment of p).
void read_parameter_box(const CheckpointReader& reader, const std::string& dataset,
                        const Parameter& p, Tensor& target);

// Loads parameters (and the optimizer state when `optimizer` is given, whole
// parameters as segments) into a model of the same architecture; UserError for
// another model, a missing or corrupt file or a dataset of the wrong shape.
CheckpointMeta load_checkpoint(const std::string& dir, TransNormerLLM& model, AdamW* optimizer);

}  // namespace linpar
