// The chunk-joining KV-state pieces on the GPU (the math: kv_state_kernels.h).
// Every piece is a small product per (batch, head) with a decay weight per
// token, in one of two shapes:
//   rows × state:  out[t, n] += w_t Σ_k rows[t, k] · S(k, n), S the f32 state or
//                  its transpose: one CTA per (tile of 64 tokens, batch·head,
//                  tile of 64 output columns), the reduction over the state's
//                  rows in steps of 32 through shared memory;
//   token reduce:  S[m, n] (+)= Σ_t w_t a[t, m] b[t, n]: one CTA per (batch·head,
//                  64×64 tile of the state) walking the chunk in steps of 32
//                  tokens, so the sum over tokens stays inside the CTA (no
//                  atomics).
// 256 threads as 16×16, each holding a 4×4 block of the 64×64 tile in f32
// registers. Decay weights are exp(−s·n) in double rounded to f32, as the CPU
// reference computes them, never repeated products. First correct version:
// CUDA cores only; a split over tokens for few heads and long chunks (the
// token reduce runs B·H·⌈dk/64⌉·⌈dv/64⌉ CTAs) would come next.
#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kv_state_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kTile = 64;      // output tile: rows and columns
constexpr int kStep = 32;      // reduction step (state rows or tokens)
constexpr int kThreads = 256;  // 16 × 16, a 4 × 4 block of outputs each
constexpr int kSide = 16;

struct Slopes {
  double s[kMaxKvStateHeads];
};
struct Decays {
  float d[kMaxKvStateHeads];
};

// λ^{base + step·t}: base 1, step +1 for queries (λ^{t+1}); base C−1, step −1
// for keys (λ^{C−1−t}).
struct TokenWeights {
  double base, step;
};

__device__ inline float load(const float* p, int64_t i) { return p[i]; }
__device__ inline float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ inline void store(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16(x); }

__device__ inline float token_weight(double slope, TokenWeights w, int64_t t) {
  return static_cast<float>(exp(-slope * (w.base + w.step * static_cast<double>(t))));
}

// out[t, n] += w_t Σ_k rows[t, k] · S(k, n) for one (batch, head), where S(k, n)
// is state[k·N + n] (state [K, N]) or, transposed, state[n·K + k] (state [N, K]).
// rows: [length, K], out: [length, N].
template <typename T, bool kTransposed>
__global__ void rows_times_state_kernel(Slopes slopes, int64_t heads, int64_t length, int K, int N,
                                        TokenWeights weights, const T* rows, const float* state,
                                        T* out) {
  __shared__ float a_tile[kStep][kTile + 1];  // [k][token]; +1: conflict-free transposed stores
  __shared__ float b_tile[kStep][kTile + 1];  // [k][column]
  __shared__ float w[kTile];
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t head = blockIdx.y;  // b·H + h
  const int n0 = static_cast<int>(blockIdx.z) * kTile;
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
  const T* a = rows + head * length * K;
  const float* s = state + head * static_cast<int64_t>(K) * N;
  T* o = out + head * length * N;
  if (threadIdx.x < kTile) {
    const int64_t t = t0 + threadIdx.x;
    w[threadIdx.x] = t < length ? token_weight(slopes.s[head % heads], weights, t) : 0.0f;
  }
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kStep) {
    for (int i = threadIdx.x; i < kTile * kStep; i += kThreads) {
      const int r = i / kStep, kk = i % kStep;
      const int64_t t = t0 + r;
      a_tile[kk][r] = (t < length && k0 + kk < K) ? load(a, t * K + k0 + kk) : 0.0f;
    }
    for (int i = threadIdx.x; i < kTile * kStep; i += kThreads) {
      if constexpr (kTransposed) {  // consecutive threads along k: state[n·K + k]
        const int c = i / kStep, kk = i % kStep;
        const int n = n0 + c, k = k0 + kk;
        b_tile[kk][c] = (n < N && k < K) ? s[static_cast<int64_t>(n) * K + k] : 0.0f;
      } else {  // along n: state[k·N + n]
        const int kk = i / kTile, c = i % kTile;
        const int n = n0 + c, k = k0 + kk;
        b_tile[kk][c] = (n < N && k < K) ? s[static_cast<int64_t>(k) * N + n] : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kStep; ++kk) {
      float ar[4], bc[4];
      for (int i = 0; i < 4; ++i) ar[i] = a_tile[kk][ty + kSide * i];
      for (int j = 0; j < 4; ++j) bc[j] = b_tile[kk][tx + kSide * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * bc[j];
    }
    __syncthreads();
  }
  __syncthreads();  // w[] when K == 0
  for (int i = 0; i < 4; ++i) {
    const int r = ty + kSide * i;
    const int64_t t = t0 + r;
    if (t >= length) continue;
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + kSide * j;
      if (n >= N) continue;
      const int64_t at = t * N + n;
      store(o, at, load(o, at) + w[r] * acc[i][j]);
    }
  }
}

// state[m, n] = (accumulate ? state[m, n] : 0) + Σ_t w_t a[t, m] b[t, n] for one
// (batch, head); a: [length, M], b: [length, N], state: [M, N].
template <typename T>
__global__ void token_reduce_kernel(Slopes slopes, int64_t heads, int64_t length, int M, int N,
                                    TokenWeights weights, const T* a_all, const T* b_all,
                                    float* state, bool accumulate) {
  __shared__ float a_tile[kStep][kTile];  // [token][m], weighted
  __shared__ float b_tile[kStep][kTile];  // [token][n]
  __shared__ float w[kStep];
  const int64_t head = blockIdx.x;
  const int m0 = static_cast<int>(blockIdx.y) * kTile, n0 = static_cast<int>(blockIdx.z) * kTile;
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
  const double slope = slopes.s[head % heads];
  const T* a = a_all + head * length * M;
  const T* b = b_all + head * length * N;
  float* s = state + head * static_cast<int64_t>(M) * N;
  float acc[4][4] = {};
  for (int64_t t0 = 0; t0 < length; t0 += kStep) {
    if (threadIdx.x < kStep) {
      const int64_t t = t0 + threadIdx.x;
      w[threadIdx.x] = t < length ? token_weight(slope, weights, t) : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int tt = i / kTile, c = i % kTile;
      const int64_t t = t0 + tt;
      const bool token = t < length;
      a_tile[tt][c] = (token && m0 + c < M) ? w[tt] * load(a, t * M + m0 + c) : 0.0f;
      b_tile[tt][c] = (token && n0 + c < N) ? load(b, t * N + n0 + c) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int tt = 0; tt < kStep; ++tt) {
      float ar[4], bc[4];
      for (int i = 0; i < 4; ++i) ar[i] = a_tile[tt][ty + kSide * i];
      for (int j = 0; j < 4; ++j) bc[j] = b_tile[tt][tx + kSide * j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * bc[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + kSide * i;
    if (m >= M) continue;
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + kSide * j;
      if (n >= N) continue;
      const int64_t at = static_cast<int64_t>(m) * N + n;
      s[at] = (accumulate ? s[at] : 0.0f) + acc[i][j];
    }
  }
}

__global__ void state_decay_add_kernel(Decays decays, int64_t heads, int64_t state_size, int64_t n,
                                       const float* a, const float* b, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = decays.d[(i / state_size) % heads] * a[i] + b[i];
  }
}

Slopes slopes_of(const KvStateDims& d, const double* slopes) {
  Slopes s{};
  for (int64_t h = 0; h < d.heads; ++h) s.s[h] = slopes[h];
  return s;
}

unsigned tiles(int64_t n) { return static_cast<unsigned>((n + kTile - 1) / kTile); }

// Calls f.template operator()<T>() with T the element type, then checks the launch.
template <typename F>
void by_type(bool bf16, F&& f) {
  if (bf16) {
    f.template operator()<__nv_bfloat16>();
  } else {
    f.template operator()<float>();
  }
  CUDA_CHECK(cudaGetLastError());
}

// out (+)= diag(w) rows · S or · Sᵀ; rows: [B·H, C, K], out: [B·H, C, N].
void rows_times_state(const KvStateDims& d, const double* slopes, bool bf16, TokenWeights weights,
                      bool transposed, const void* rows, int K, const float* state, void* out,
                      int N) {
  if (d.batch * d.heads == 0 || d.length == 0 || N == 0) return;
  const Slopes s = slopes_of(d, slopes);
  const dim3 grid(tiles(d.length), static_cast<unsigned>(d.batch * d.heads), tiles(N));
  by_type(bf16, [&]<typename T>() {
    const T* r = static_cast<const T*>(rows);
    T* o = static_cast<T*>(out);
    if (transposed) {
      rows_times_state_kernel<T, true><<<grid, kThreads, 0, cudaStreamLegacy>>>(
          s, d.heads, d.length, K, N, weights, r, state, o);
    } else {
      rows_times_state_kernel<T, false><<<grid, kThreads, 0, cudaStreamLegacy>>>(
          s, d.heads, d.length, K, N, weights, r, state, o);
    }
  });
}

// S (+)= Σ_t w_t a_tᵀ b_t; a: [B·H, C, M], b: [B·H, C, N], S: [B·H, M, N].
void token_reduce(const KvStateDims& d, const double* slopes, bool bf16, TokenWeights weights,
                  const void* a, int M, const void* b, int N, float* state, bool accumulate) {
  if (d.batch * d.heads == 0 || M == 0 || N == 0) return;
  if (accumulate && d.length == 0) return;
  const Slopes s = slopes_of(d, slopes);
  const dim3 grid(static_cast<unsigned>(d.batch * d.heads), tiles(M), tiles(N));
  by_type(bf16, [&]<typename T>() {
    token_reduce_kernel<T><<<grid, kThreads, 0, cudaStreamLegacy>>>(
        s, d.heads, d.length, M, N, weights, static_cast<const T*>(a), static_cast<const T*>(b),
        state, accumulate);
  });
}

TokenWeights query_weights() { return {1.0, 1.0}; }  // λ^{t+1}
TokenWeights key_weights(const KvStateDims& d) {     // λ^{C−1−t}
  return {static_cast<double>(d.length - 1), -1.0};
}

}  // namespace

void chunk_state_forward(const KvStateDims& d, const double* slopes, bool bf16, const void* k,
                         const void* v, float* kv) {
  token_reduce(d, slopes, bf16, key_weights(d), k, static_cast<int>(d.dk), v,
               static_cast<int>(d.dv), kv, /*accumulate=*/false);
}

void chunk_state_backward(const KvStateDims& d, const double* slopes, bool bf16, const void* k,
                          const void* v, const float* d_kv, void* dk, void* dv) {
  const int dkh = static_cast<int>(d.dk), dvh = static_cast<int>(d.dv);
  // dK += diag(w) V dKVᵀ: rows V [C, dv] times dKVᵀ [dv, dk].
  rows_times_state(d, slopes, bf16, key_weights(d), /*transposed=*/true, v, dvh, d_kv, dk, dkh);
  // dV += diag(w) K dKV: rows K [C, dk] times dKV [dk, dv].
  rows_times_state(d, slopes, bf16, key_weights(d), /*transposed=*/false, k, dkh, d_kv, dv, dvh);
}

void inter_chunk_forward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                         const float* kv_in, void* o) {
  rows_times_state(d, slopes, bf16, query_weights(), /*transposed=*/false, q,
                   static_cast<int>(d.dk), kv_in, o, static_cast<int>(d.dv));
}

void inter_chunk_backward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                          const float* kv_in, const void* d_o, void* dq, float* d_kv_in) {
  const int dkh = static_cast<int>(d.dk), dvh = static_cast<int>(d.dv);
  // dQ += diag(w) dO KV_inᵀ: rows dO [C, dv] times KV_inᵀ [dv, dk].
  rows_times_state(d, slopes, bf16, query_weights(), /*transposed=*/true, d_o, dvh, kv_in, dq, dkh);
  // dKV_in += (diag(w) Q)ᵀ dO.
  token_reduce(d, slopes, bf16, query_weights(), q, dkh, d_o, dvh, d_kv_in, /*accumulate=*/true);
}

void state_decay_add(int64_t batch, int64_t heads, int64_t state_size, const float* decays,
                     const float* a, const float* b, float* out) {
  const int64_t n = batch * heads * state_size;
  if (n == 0) return;
  Decays d{};
  for (int64_t h = 0; h < heads; ++h) d.d[h] = decays[h];
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
  state_decay_add_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(d, heads, state_size, n, a, b,
                                                                  out);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
