// Shared by the CPU and GPU KV-state tests: the FLOPs each op counts equal
// its formula, for zero-filled operands of one dtype on `device` (f32 states
// there; the operands' dtype on the CPU).
#pragma once

#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "core/ops/kv_state.h"

namespace linpar::testing {

inline void expect_kv_state_flops(DType dtype, Device device) {
  const int64_t B = 2, H = 2, C = 11, dk = 5, dv = 3;
  const std::vector<double> slopes = {0.1, 0.7};
  const DType state = Tensor::stats_dtype(dtype, device);
  auto zeros = [&](const Shape& s, DType t) { return Tensor::zeros(s, t, device); };
  Tensor q = zeros({B, H, C, dk}, dtype), k = zeros({B, H, C, dk}, dtype), v = zeros({B, H, C, dv}, dtype),
         o = zeros({B, H, C, dv}, dtype), dq = zeros({B, H, C, dk}, dtype), dk_ = zeros({B, H, C, dk}, dtype),
         dv_ = zeros({B, H, C, dv}, dtype);
  Tensor kv = zeros({B, H, dk, dv}, state), out = zeros({B, H, dk, dv}, state), d_kv = zeros({B, H, dk, dv}, state);
  auto flops = [](auto&& f) {
    FlopScope scope;
    f();
    return scope.flops();
  };
  EXPECT_EQ(flops([&] { chunk_state_forward(k, v, slopes, out); }), chunk_state_forward_flops(B, H, C, dk, dv));
  EXPECT_EQ(flops([&] { chunk_state_backward(k, v, slopes, kv, dk_, dv_); }),
            chunk_state_backward_flops(B, H, C, dk, dv));
  EXPECT_EQ(flops([&] { inter_chunk_forward(q, slopes, kv, o); }), inter_chunk_forward_flops(B, H, C, dk, dv));
  EXPECT_EQ(flops([&] { inter_chunk_backward(q, slopes, kv, o, dq, d_kv); }),
            inter_chunk_backward_flops(B, H, C, dk, dv));
  EXPECT_EQ(flops([&] { state_decay_add(kv, slopes, C, out, out); }), state_decay_add_flops(B, H, dk, dv));
}

}  // namespace linpar::testing
