// Op timing: off by default (nothing recorded), on it sums each op's calls
// and time by name; reset clears.
#include <gtest/gtest.h>

#include "core/op_timing.h"
#include "core/ops/elementwise.h"
#include "gradcheck.h"

namespace linpar {

namespace {
const OpTime* find(const std::vector<OpTime>& times, const std::string& name) {
  for (const OpTime& t : times) {
    if (t.name == name) return &t;
  }
  return nullptr;
}
}  // namespace

TEST(OpTiming, RecordsCallsAndTimeByOpOnlyWhenEnabled) {
  reset_op_times();
  Tensor x = testing::random_tensor({1000}, 1, 1.0, DType::F32), y = x.clone();
  axpy(1.0, x, y);
  EXPECT_EQ(find(op_times(), "axpy"), nullptr);  // off by default
  enable_op_timing(true);
  for (int i = 0; i < 3; ++i) axpy(0.5, x, y);
  scale(2.0, y);
  enable_op_timing(false);
  const std::vector<OpTime> times = op_times();
  const OpTime* a = find(times, "axpy");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->calls, 3);
  EXPECT_GT(a->seconds, 0.0);
  ASSERT_NE(find(times, "scale"), nullptr);
  EXPECT_EQ(find(times, "scale")->calls, 1);
  reset_op_times();
  EXPECT_TRUE(op_times().empty());
}

}  // namespace linpar
