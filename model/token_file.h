// Token files: a 32-byte little-endian header and a flat array of tokens
// (docs/data.md has the byte layout):
//   magic "LINPTOK1" | u32 version = 1 | u32 token_bytes (2 or 4) |
//   u64 num_tokens | u32 vocab_size | u32 reserved = 0 | tokens...
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace linpar {

inline constexpr char kTokenFileMagic[8] = {'L', 'I', 'N', 'P', 'T', 'O', 'K', '1'};
inline constexpr size_t kTokenFileHeaderBytes = 32;

// uint16 tokens when vocab_size <= 65536, else uint32. Written to path + ".tmp"
// and renamed, so no half-written file is left under the final name.
void write_token_file(const std::string& path, const std::vector<uint32_t>& tokens,
                      int64_t vocab_size);

// A validated token file held in memory (UserError naming the path and the rule
// for a missing file, a bad header, a size that does not match, or a token
// outside the vocabulary).
class TokenFile {
 public:
  explicit TokenFile(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t vocab_size() const { return vocab_size_; }
  int32_t token(int64_t i) const { return static_cast<int32_t>(tokens_[static_cast<size_t>(i)]); }
  void copy(int64_t begin, int64_t count, int32_t* out) const;

 private:
  std::string path_;
  int64_t vocab_size_ = 0;
  std::vector<uint32_t> tokens_;
};

// Tokenizes a text file into out_dir/train.bin and out_dir/val.bin (validation
// = the last val_fraction of the text, cut at a line boundary, so the two do
// not overlap) and out_dir/corpus.json describing them.
void prepare_text_corpus(const std::string& text_path, const std::string& out_dir,
                         double val_fraction, const Tokenizer& tokenizer);

}  // namespace linpar
