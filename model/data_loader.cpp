#include "model/data_loader.h"

#include "core/error.h"
#include "core/rng.h"

namespace linpar {

DataLoader::DataLoader(const TokenFile& file, int64_t seq_len, uint64_t seed)
    : file_(file), seq_len_(seq_len), seed_(seed) {
  if (file.size() < seq_len + 1) {
    user_error("token file {} holds {} tokens, fewer than --seq-len + 1 = {}", file.path(),
               file.size(), seq_len + 1);
  }
}

int64_t DataLoader::window_start(int64_t sample_index) const {
  const uint64_t choices =
      static_cast<uint64_t>(file_.size() - seq_len_);  // starts 0 .. size − seq_len − 1
  return static_cast<int64_t>(
      CounterRng(seed_, "data").below(static_cast<uint64_t>(sample_index), choices));
}

void DataLoader::sample_at(int64_t sample_index, int32_t* inputs, int32_t* targets) const {
  const int64_t start = window_start(sample_index);
  file_.copy(start, seq_len_, inputs);
  file_.copy(start + 1, seq_len_, targets);
}

void DataLoader::next_batch(int64_t batch, int32_t* inputs, int32_t* targets) {
  for (int64_t b = 0; b < batch; ++b)
    sample_at(position_ + b, inputs + b * seq_len_, targets + b * seq_len_);
  position_ += batch;
}

std::vector<int64_t> eval_window_starts(int64_t file_size, int64_t seq_len, int64_t max_windows) {
  std::vector<int64_t> starts;
  const int64_t available = (file_size - 1) / seq_len;  // windows of seq_len inputs + 1 target
  if (available <= 0 || max_windows <= 0) return starts;
  const int64_t count = std::min(available, max_windows);
  const int64_t stride = available / count;  // in windows: spread over the file
  for (int64_t w = 0; w < count; ++w) starts.push_back(w * stride * seq_len);
  return starts;
}

}  // namespace linpar
