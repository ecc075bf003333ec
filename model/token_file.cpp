#include "model/token_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace linpar {

namespace fs = std::filesystem;

namespace {

template <typename T>
void put(std::string& out, T value) {  // little-endian, which every host we target is
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T get(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

}  // namespace

void write_token_file(const std::string& path, const std::vector<uint32_t>& tokens,
                      int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > (int64_t{1} << 32) - 1)
    user_error("token file {}: vocab size {} out of range", path, vocab_size);
  const uint32_t width = vocab_size <= 65536 ? 2 : 4;
  std::string bytes;
  bytes.reserve(kTokenFileHeaderBytes + tokens.size() * width);
  bytes.append(kTokenFileMagic, 8);
  put<uint32_t>(bytes, 1);
  put<uint32_t>(bytes, width);
  put<uint64_t>(bytes, tokens.size());
  put<uint32_t>(bytes, static_cast<uint32_t>(vocab_size));
  put<uint32_t>(bytes, 0);
  for (uint32_t t : tokens) {
    LINPAR_CHECK(t < vocab_size, "token {} outside vocabulary {}", t, vocab_size);
    if (width == 2)
      put<uint16_t>(bytes, static_cast<uint16_t>(t));
    else
      put<uint32_t>(bytes, t);
  }
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

TokenFile::TokenFile(const std::string& path) : path_(path) {
  const std::string bytes = read_whole_file(path, "token file");
  if (bytes.size() < kTokenFileHeaderBytes) {
    user_error("token file {}: {} bytes, shorter than the {}-byte header", path, bytes.size(),
               kTokenFileHeaderBytes);
  }
  const char* p = bytes.data();
  if (std::memcmp(p, kTokenFileMagic, 8) != 0)
    user_error("token file {}: bad magic (not a LINPTOK1 file)", path);
  const auto version = get<uint32_t>(p + 8), width = get<uint32_t>(p + 12);
  const auto count = get<uint64_t>(p + 16);
  const auto vocab = get<uint32_t>(p + 24);
  if (version != 1)
    user_error("token file {}: version {} is not supported (expected 1)", path, version);
  if (width != 2 && width != 4)
    user_error("token file {}: token width {} bytes (expected 2 or 4)", path, width);
  if (vocab == 0) user_error("token file {}: vocabulary size 0", path);
  if (bytes.size() != kTokenFileHeaderBytes + count * width) {
    user_error(
        "token file {}: header says {} tokens of {} bytes, the file holds {} bytes after the "
        "header",
        path, count, width, bytes.size() - kTokenFileHeaderBytes);
  }
  vocab_size_ = vocab;
  tokens_.resize(count);
  const char* data = p + kTokenFileHeaderBytes;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t t = width == 2 ? get<uint16_t>(data + 2 * i) : get<uint32_t>(data + 4 * i);
    if (t >= vocab)
      user_error("token file {}: token {} at index {} is outside its vocabulary of {}", path, t, i,
                 vocab);
    tokens_[i] = t;
  }
}

void TokenFile::copy(int64_t begin, int64_t count, int32_t* out) const {
  LINPAR_CHECK(begin >= 0 && count >= 0 && begin + count <= size(), "copy [{}, {}) of {} tokens",
               begin, begin + count, size());
  for (int64_t i = 0; i < count; ++i)
    out[i] = static_cast<int32_t>(tokens_[static_cast<size_t>(begin + i)]);
}

void prepare_text_corpus(const std::string& text_path, const std::string& out_dir,
                         double val_fraction, const Tokenizer& tokenizer) {
  if (!(val_fraction > 0 && val_fraction <= 0.5))
    user_error("--val-fraction {}: must be in (0, 0.5]", val_fraction);
  const std::string text = read_whole_file(text_path, "--text");
  if (text.empty()) user_error("--text {}: the file is empty", text_path);
  // Validation = the tail, starting at the first line boundary after the cut.
  size_t cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - val_fraction));
  const size_t newline = text.find('\n', cut);
  cut = newline == std::string::npos ? cut : newline + 1;
  if (cut == 0 || cut >= text.size())
    user_error("--text {}: too short to split off a validation part", text_path);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) user_error("--out-dir {}: cannot create it: {}", out_dir, ec.message());
  const auto train = tokenizer.encode(std::string_view(text).substr(0, cut));
  const auto val = tokenizer.encode(std::string_view(text).substr(cut));
  write_token_file((fs::path(out_dir) / "train.bin").string(), train, tokenizer.vocab_size());
  write_token_file((fs::path(out_dir) / "val.bin").string(), val, tokenizer.vocab_size());
  const nlohmann::json info = {
      {"source", text_path},     {"tokenizer", tokenizer.name()},  {"bytes", text.size()},
      {"train_bytes", cut},      {"val_bytes", text.size() - cut}, {"train_tokens", train.size()},
      {"val_tokens", val.size()}};
  write_file_atomically((fs::path(out_dir) / "corpus.json").string(),
                        [&](std::ostream& out) { out << info.dump(2) << "\n"; });
}

}  // namespace linpar
