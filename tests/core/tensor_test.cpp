#include "core/tensor.h"

#include <gtest/gtest.h>

namespace linpar {

TEST(Tensor, ShapeNumelAndZeros) {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::F32);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.nbytes(), 96u);
  for (float v : t.to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, SliceAndSelectAreViewsOfTheSameStorage) {
  Tensor t = Tensor::from_vector<float>({3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor rows = t.slice0(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 2}));
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  rows.data<float>()[0] = 42;
  EXPECT_EQ(t.data<float>()[2], 42);
  Tensor row = t.select0(2);
  EXPECT_EQ(row.shape(), (Shape{2}));
  EXPECT_EQ(row.data<float>()[1], 5);
}

TEST(Tensor, ReshapeInfersOneDimension) {
  Tensor t = Tensor::zeros({4, 6}, DType::F64);
  EXPECT_EQ(t.reshape({2, -1, 3}).shape(), (Shape{2, 4, 3}));
  EXPECT_THROW(t.reshape({5, -1}), InternalError);
}

TEST(Tensor, CloneIsADeepCopy) {
  Tensor t = Tensor::from_vector<int32_t>({2}, {7, 8});
  Tensor c = t.clone();
  c.data<int32_t>()[0] = 1;
  EXPECT_EQ(t.data<int32_t>()[0], 7);
}

TEST(Tensor, DtypeConversionRoundsBf16ToNearestEven) {
  Tensor t = Tensor::from_vector<float>({3}, {1.0f, 1.00390625f, -2.5f});
  Tensor b = t.to(DType::BF16);
  std::vector<float> back = b.to(DType::F32).to_vector<float>();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f);  // halfway between 1 and 1+2^-7: ties to even
  EXPECT_EQ(back[2], -2.5f);
}

TEST(Tensor, TypedAccessChecksTheDtype) {
  Tensor t = Tensor::zeros({2}, DType::F32);
  EXPECT_THROW(t.data<double>(), InternalError);
}

}  // namespace linpar
