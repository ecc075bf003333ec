// Training batches: random windows of seq_len + 1 tokens (inputs, and targets
// shifted by one). The window of sample i is a pure function of (seed, i), so
// the data order is resumable from one integer (the number of samples drawn)
// and data-parallel ranks can take disjoint samples of one global batch.
#pragma once

#include <cstdint>
#include <vector>

#include "model/token_file.h"

namespace linpar {

class DataLoader {
 public:
  DataLoader(const TokenFile& file, int64_t seq_len, uint64_t seed);

  // Fills batch × seq_len inputs and targets, then advances position() by batch.
  void next_batch(int64_t batch, int32_t* inputs, int32_t* targets);
  void sample_at(int64_t sample_index, int32_t* inputs, int32_t* targets) const;
  int64_t window_start(int64_t sample_index) const;

  int64_t position() const { return position_; }
  void set_position(int64_t position) { position_ = position; }

 private:
  const TokenFile& file_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t position_ = 0;
};

// Up to max_windows non-overlapping windows of seq_len + 1 tokens, spread
// evenly over the file from its start (validation).
std::vector<int64_t> eval_window_starts(int64_t file_size, int64_t seq_len, int64_t max_windows);

}  // namespace linpar
