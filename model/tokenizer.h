// Tokenizers turn text into token ids. linpar ships a byte-level one (every
// byte is a token, vocabulary 256): no vocabulary file, exact round trips, and
// bits per byte follow directly from the loss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace linpar {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<uint32_t>& tokens) const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }
  std::vector<uint32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<uint32_t>& tokens) const override;
};

// Mean cross-entropy in nats per token -> bits per byte of the underlying text:
// loss / ln 2 · tokens / bytes.
double bits_per_byte(double loss_nats_per_token, double tokens_per_byte);

}  // namespace linpar
