// Checkpoints (DESIGN.md, "Files and formats"): a directory per step holding
// one HDF5 file per rank with that rank's shards (each dataset annotated with
// its global shape and offset) and meta.json (step, config, layout, optimizer,
// data position, seed). Written under a temporary name and renamed when
// complete, so a directory named step_N is always whole.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/optimizer.h"
#include "model/transnormer.h"

namespace linpar {

inline constexpr const char* kCheckpointFormat = "linpar-checkpoint-1";

struct CheckpointMeta {
  int64_t step = 0;           // optimizer steps completed
  int64_t data_position = 0;  // samples drawn by the training data loader
  nlohmann::json extra;       // run options worth recording (schedule, seed, ...)
};

// Writes <ckpt_dir>/step_<step>/ (replacing nothing: refuses if it exists).
std::string save_checkpoint(const std::string& ckpt_dir, const TransNormerLLM& model,
                            const AdamW& optimizer, const CheckpointMeta& meta);

// The newest complete step directory under ckpt_dir, or "" when there is none.
std::string latest_checkpoint(const std::string& ckpt_dir);

// Reads and validates meta.json (format, files present); UserError naming the
// directory and the problem otherwise.
nlohmann::json read_checkpoint_meta(const std::string& dir);

// Loads parameters (and optimizer state when `optimizer` is given) into a model
// of the same architecture; UserError for a different model, a missing or
// corrupt file or a dataset of the wrong shape. Returns the metadata.
CheckpointMeta load_checkpoint(const std::string& dir, TransNormerLLM& model, AdamW* optimizer);

}  // namespace linpar
