// Moving data between the token-major layout of projections ([B, N, width])
// and the head-major layout attention kernels want ([B, H, N, d]). Pure data
// movement: no FLOPs.
#pragma once

#include "core/tensor.h"

namespace linpar {

// x: [B, N, W] -> y: [B, H, N, d];  y[b,h,n,j] = x[b, n, column + h·d + j]
void heads_from_columns(const Tensor& x, int64_t column, Tensor& y);
// y: [B, H, N, d] -> x: [B, N, W];  x[b, n, column + h·d + j] = y[b,h,n,j] (other columns
// untouched)
void heads_to_columns(const Tensor& y, int64_t column, Tensor& x);

}  // namespace linpar
