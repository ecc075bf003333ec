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

TEST(Tensor, AViewAliasesOnlyWhatStartsAtItsFirstByte) {
  Tensor t = Tensor::zeros({4, 3}, DType::F32);
  EXPECT_TRUE(t.aliases(t.reshape({12})));
  EXPECT_TRUE(t.aliases(t.slice0(0, 2)));
  EXPECT_FALSE(t.aliases(t.slice0(1, 2)));
  EXPECT_FALSE(t.aliases(t.clone()));
}

// A meta tensor (the op plan's) has a shape, a dtype and views, and no
// data: reading it is an internal error, copies and fills move nothing, and
// it never meets a real tensor in a copy.
TEST(Tensor, MetaTensorsHaveShapesAndNoData) {
  Tensor m = Tensor::zeros({4, 1u << 20, 1u << 10}, DType::F32, Device::Meta);  // 16 GiB on paper
  EXPECT_TRUE(m.defined());
  EXPECT_TRUE(m.is_meta());
  EXPECT_EQ(m.nbytes(), size_t{16} << 30);
  EXPECT_THROW(m.raw_data(), InternalError);
  EXPECT_THROW(m.data<float>(), InternalError);
  EXPECT_EQ(m.slice0(1, 3).shape(), Shape({2, 1 << 20, 1 << 10}));
  EXPECT_TRUE(m.reshape({-1}).is_meta());
  const Tensor half = m.to(DType::BF16);
  EXPECT_TRUE(half.is_meta());
  EXPECT_EQ(half.nbytes(), size_t{8} << 30);
  Tensor copy = Tensor::empty(m.shape(), DType::F32, Device::Meta);
  copy.copy_from(m);
  copy.fill_zero();
  Tensor real = Tensor::zeros({2}, DType::F32);
  EXPECT_TRUE(real.to(Device::Meta).is_meta());
  Tensor meta_pair = Tensor::empty({2}, DType::F32, Device::Meta);
  EXPECT_THROW(real.copy_from(meta_pair), InternalError);
  EXPECT_THROW(meta_pair.copy_from(real), InternalError);
  EXPECT_THROW(meta_pair.to(Device::CPU), InternalError);
  // Statistics are planned at the GPU's f32 (the CPU's f64 for f64).
  EXPECT_EQ(Tensor::stats_dtype(DType::BF16, Device::Meta), DType::F32);
  EXPECT_EQ(Tensor::stats_dtype(DType::F64, Device::Meta), DType::F64);
}

}  // namespace linpar
