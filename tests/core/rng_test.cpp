#include "core/rng.h"

#include <gtest/gtest.h>

#include <cmath>

namespace linpar {

// Known-answer test from the Random123 distribution (kat_vectors, philox4x32_10).
TEST(Philox, MatchesRandom123KnownAnswers) {
  auto zero = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(zero, (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  auto ones =
      philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(ones, (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  auto pi =
      philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(pi, (std::array<uint32_t, 4>{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(CounterRng, ValueDependsOnlyOnSeedStreamAndIndex) {
  CounterRng a(1234, "layers.0.w"), b(1234, "layers.0.w"), other(1234, "layers.1.w");
  EXPECT_EQ(a.normal(17), b.normal(17));
  EXPECT_NE(a.normal(17), other.normal(17));
  EXPECT_NE(a.normal(17), a.normal(18));
  EXPECT_NE(CounterRng(1235, "layers.0.w").normal(17), a.normal(17));
}

TEST(CounterRng, NormalHasUnitMomentsAndUniformIsInRange) {
  CounterRng rng(7, "moments");
  const int n = 200000;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    double x = rng.normal(static_cast<uint64_t>(i));
    sum += x;
    sum_sq += x * x;
    double u = rng.uniform(static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.01);
}

}  // namespace linpar
