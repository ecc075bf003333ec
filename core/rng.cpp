#include "core/rng.h"

#include <cmath>
#include <numbers>

namespace linpar {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}
}  // namespace

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c[0], hi0, lo0);
    mulhilo(kMul1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

uint64_t fnv1a64(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) {
    hash ^= ch;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

CounterRng::CounterRng(uint64_t seed, std::string_view stream)
    : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)},
      stream_hash_(fnv1a64(stream)) {}

std::array<uint32_t, 4> CounterRng::block(uint64_t index) const {
  return philox4x32(
      {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
       static_cast<uint32_t>(stream_hash_), static_cast<uint32_t>(stream_hash_ >> 32)},
      key_);
}

double CounterRng::uniform(uint64_t index) const {
  auto r = block(index);
  uint64_t bits = (static_cast<uint64_t>(r[0]) << 21) ^ (r[1] >> 11);  // 53 bits
  return static_cast<double>(bits) * 0x1p-53;
}

double CounterRng::normal(uint64_t index) const {
  auto r = block(index);
  // Box-Muller on two independent 32-bit words; u1 in (0, 1] keeps log finite.
  double u1 = (static_cast<double>(r[0]) + 1.0) * 0x1p-32;
  double u2 = static_cast<double>(r[1]) * 0x1p-32;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t CounterRng::below(uint64_t index, uint64_t bound) const {
  auto r = block(index);
  uint64_t bits = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  return bits % bound;
}

}  // namespace linpar
