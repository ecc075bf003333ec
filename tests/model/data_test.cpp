// Token files, the byte tokenizer, the resumable sampler and corpus preparation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/data_loader.h"
#include "model/token_file.h"
#include "model/tokenizer.h"
#include "temp_dir.h"

namespace linpar {

using testing::TempDir;

TEST(ByteTokenizer, RoundTripsAnyBytesAndConvertsToBitsPerByte) {
  ByteTokenizer tok;
  const std::string text = "In the beginning \xE2\x80\x94 \xC3\xA9\n";
  auto ids = tok.encode(text);
  EXPECT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[17], 0xE2u);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_THROW(tok.decode({300}), UserError);
  EXPECT_NEAR(bits_per_byte(std::log(256.0), 1.0), 8.0, 1e-12);  // uniform over bytes = 8 bits
  EXPECT_NEAR(bits_per_byte(std::log(2.0), 0.5), 0.5, 1e-12);
}

TEST(TokenFile, RoundTripInBothWidths) {
  TempDir dir;
  write_token_file(dir / "a.bin", {0, 255, 7, 42}, 256);
  write_token_file(dir / "b.bin", {0, 70000, 99999}, 100000);
  TokenFile a(dir / "a.bin"), b(dir / "b.bin");
  EXPECT_EQ(a.size(), 4);
  EXPECT_EQ(a.vocab_size(), 256);
  EXPECT_EQ(std::filesystem::file_size(dir / "a.bin"), 32u + 4 * 2);
  EXPECT_EQ(std::filesystem::file_size(dir / "b.bin"), 32u + 3 * 4);
  EXPECT_EQ(b.token(1), 70000);
  int32_t out[2];
  a.copy(1, 2, out);
  EXPECT_EQ(out[0], 255);
  EXPECT_EQ(out[1], 7);
}

TEST(TokenFile, InvalidFilesNameThePathAndTheRule) {
  TempDir dir;
  write_token_file(dir / "good.bin", {1, 2, 3}, 256);
  std::string good = testing::read_file(dir / "good.bin");
  auto write_bytes = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  auto expect_refused = [](const std::string& path, const std::string& rule) {
    try {
      TokenFile file(path);
      ADD_FAILURE() << "accepted " << path;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(rule), std::string::npos) << e.what();
    }
  };
  expect_refused(dir / "missing.bin", "cannot open");
  expect_refused(write_bytes("short.bin", good.substr(0, 10)), "shorter than the 32-byte header");
  std::string magic = good;
  magic[0] = 'X';
  expect_refused(write_bytes("magic.bin", magic), "bad magic");
  std::string version = good;
  version[8] = 2;
  expect_refused(write_bytes("version.bin", version), "version 2");
  std::string width = good;
  width[12] = 3;
  expect_refused(write_bytes("width.bin", width), "token width 3");
  expect_refused(write_bytes("truncated.bin", good.substr(0, good.size() - 1)),
                 "header says 3 tokens");
  std::string vocab = good;
  vocab[24] = 2;  // vocabulary 2, but tokens 2 and 3 appear
  vocab[25] = 0;
  expect_refused(write_bytes("vocab.bin", vocab), "outside its vocabulary of 2");
}

TEST(DataLoader, DeterministicResumableAndShifted) {
  TempDir dir;
  std::vector<uint32_t> tokens(1000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i % 251);
  write_token_file(dir / "t.bin", tokens, 256);
  TokenFile file(dir / "t.bin");
  const int64_t seq = 16, batch = 4;
  DataLoader a(file, seq, 7), b(file, seq, 7), other(file, seq, 8);
  std::vector<int32_t> in_a(batch * seq), tg_a(batch * seq), in_b(batch * seq), tg_b(batch * seq);
  a.next_batch(batch, in_a.data(), tg_a.data());
  b.next_batch(batch, in_b.data(), tg_b.data());
  EXPECT_EQ(in_a, in_b);
  EXPECT_EQ(a.position(), batch);
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t t = 0; t + 1 < seq; ++t) EXPECT_EQ(tg_a[i * seq + t], in_a[i * seq + t + 1]);
    EXPECT_EQ((in_a[i * seq + seq - 1] + 1) % 251, tg_a[i * seq + seq - 1] % 251);
  }
  // Resume: a fresh loader set to position 4 continues exactly as `a` does.
  a.next_batch(batch, in_a.data(), tg_a.data());
  DataLoader resumed(file, seq, 7);
  resumed.set_position(batch);
  resumed.next_batch(batch, in_b.data(), tg_b.data());
  EXPECT_EQ(in_a, in_b);
  EXPECT_NE(other.window_start(0) * 1000 + other.window_start(1),
            a.window_start(0) * 1000 + a.window_start(1));
  for (int64_t i = 0; i < 10000; ++i) {
    ASSERT_GE(a.window_start(i), 0);
    ASSERT_LE(a.window_start(i) + seq + 1, file.size());
  }
  EXPECT_THROW(DataLoader(file, 1000, 1), UserError);
}

TEST(DataLoader, EvalWindowsDoNotOverlapAndStayInTheFile) {
  auto starts = eval_window_starts(1000, 64, 5);
  ASSERT_EQ(starts.size(), 5u);
  for (size_t i = 1; i < starts.size(); ++i) EXPECT_GE(starts[i] - starts[i - 1], 64);
  EXPECT_LE(starts.back() + 65, 1000);
  EXPECT_EQ(eval_window_starts(1000, 64, 100).size(), 15u);  // (1000 − 1) / 64 windows fit
  EXPECT_TRUE(eval_window_starts(10, 64, 4).empty());
}

TEST(PrepareCorpus, SplitsAtALineBoundaryWithValidationLast) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + " of the text\n";
  std::ofstream(dir / "t.txt") << text;
  prepare_text_corpus(dir / "t.txt", dir / "out", 0.1, ByteTokenizer());
  TokenFile train(dir / "out/train.bin"), val(dir / "out/val.bin");
  EXPECT_EQ(train.size() + val.size(), static_cast<int64_t>(text.size()));
  EXPECT_EQ(train.token(train.size() - 1), '\n');
  EXPECT_EQ(val.token(0), 'l');
  EXPECT_NEAR(static_cast<double>(val.size()) / static_cast<double>(text.size()), 0.1, 0.02);
  auto info = nlohmann::json::parse(testing::read_file(dir / "out/corpus.json"));
  EXPECT_EQ(info["val_tokens"].get<int64_t>(), val.size());
  EXPECT_THROW(prepare_text_corpus(dir / "t.txt", dir / "out2", 0.9, ByteTokenizer()), UserError);
  EXPECT_THROW(prepare_text_corpus(dir / "none.txt", dir / "out3", 0.1, ByteTokenizer()),
               UserError);
}

}  // namespace linpar
