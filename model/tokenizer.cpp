#include "model/tokenizer.h"

#include <numbers>

#include "core/error.h"

namespace linpar {

std::vector<uint32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return tokens;
}

std::string ByteTokenizer::decode(const std::vector<uint32_t>& tokens) const {
  std::string text(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] > 255) user_error("byte tokenizer: token {} is not a byte", tokens[i]);
    text[i] = static_cast<char>(tokens[i]);
  }
  return text;
}

double bits_per_byte(double loss_nats_per_token, double tokens_per_byte) {
  return loss_nats_per_token / std::numbers::ln2 * tokens_per_byte;
}

}  // namespace linpar
