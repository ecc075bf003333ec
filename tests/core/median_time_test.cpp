// The timing harness of bench/ and `linpar profile` (core/median_time.h):
// warm-up and timed calls counted, the median taken, bad counts refused. No
// speed is asserted here (speed claims live in bench/).
#include "core/median_time.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"

namespace linpar {

TEST(MedianTime, RunsWarmupsThenTimedCallsAndTakesTheMedian) {
  int calls = 0;
  // Calls 3..7 are timed: the third of them (the median of five) sleeps
  // 20 ms, the others 2 ms and one 60 ms, so the median is a 2 ms call's
  // or longer, and below the 60 ms one's (sleeps last at least as asked).
  const double seconds = median_seconds(
      [&] {
        ++calls;
        const int ms = calls == 5 ? 20 : calls == 7 ? 60 : 2;
        if (calls > 2) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      },
      5, Device::CPU, /*warmups=*/2, Clock::Wall);
  EXPECT_EQ(calls, 7);
  EXPECT_GE(seconds, 0.002);
  EXPECT_LT(seconds, 0.060);
  // On the CPU the event clock is the wall clock too.
  calls = 0;
  median_seconds([&] { ++calls; }, 3, Device::CPU, 0, Clock::Events);
  EXPECT_EQ(calls, 3);
}

TEST(MedianTime, NoTimedCallIsRefused) {
  EXPECT_THROW(median_seconds([] {}, 0, Device::CPU, 1, Clock::Wall), InternalError);
  EXPECT_THROW(median_seconds([] {}, 3, Device::CPU, -1, Clock::Wall), InternalError);
}

}  // namespace linpar
