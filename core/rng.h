// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
// A value depends only on (seed, stream name, index): no hidden state, so any
// rank can draw exactly the elements of a global tensor that its shard holds
// and a tp=2 run starts from bit-identical global weights to a tp=1 run.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace linpar {

// One Philox4x32-10 block: 4 random words for a 128-bit counter and 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

uint64_t fnv1a64(std::string_view text);

class CounterRng {
 public:
  CounterRng(uint64_t seed, std::string_view stream);

  // Uniform in [0, 1) with 53 random bits; standard normal (Box-Muller);
  // uniform integer in [0, bound) (bound > 0; bias below 2^-32 for bound < 2^32).
  double uniform(uint64_t index) const;
  double normal(uint64_t index) const;
  uint64_t below(uint64_t index, uint64_t bound) const;

 private:
  std::array<uint32_t, 4> block(uint64_t index) const;
  std::array<uint32_t, 2> key_;
  uint64_t stream_hash_;
};

}  // namespace linpar
