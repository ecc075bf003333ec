// The chunk-joining KV-state pieces on the GPU (the math: kv_state_kernels.h).
// Every piece is a product per (batch, head) with a decay weight per token, in
// one of two shapes:
//   rows × state:  out[t, n] += w_t Σ_k rows[t, k] · S(k, n), S the f32 state or
//                  its transpose (inter_chunk_forward, dQ of inter_chunk_backward,
//                  both halves of chunk_state_backward);
//   token reduce:  S[m, n] (+)= Σ_t w_t a[t, m] b[t, n] (chunk_state_forward,
//                  dKV_in of inter_chunk_backward).
// Decay weights are exp(−s·n) in double rounded to f32 from the token's
// position, as the CPU reference computes them, never repeated products.
//
// Parallelism. Rows × state is independent per token: CTAs over (64-column
// tiles of the output, groups of 64-token tiles, batch·head), each loading its
// slice of the state once. The token reduce sums over the whole chunk; the
// first version gave that sum to one CTA per (batch·head, state tile), 16 CTAs
// on 132 SMs walking 8K tokens for tnl-385m. Here the chunk is cut into
// `splits` spans, one CTA per (state tile, span, batch·head) writes its f32
// partial tile to scratch, and a second small kernel adds the partials in span
// order (then the old state when accumulating). Two passes rather than atomics
// into the state: the result is the same bit for bit run to run, and the span
// count depends on the shape only, not on the device.
//
// Arithmetic. f32 operands: CUDA-core f32 FMAs (256 threads as 16×16, a 4×4
// block of the 64×64 tile each), as exact as the CPU reference. bf16 operands:
// tensor cores (WMMA m16n16k16, f32 accumulation), with every f32 factor
// carried as two bf16 halves, x = hi + lo, |x − hi − lo| ≤ 2⁻¹⁸|x|, so that the
// products keep (nearly) f32 accuracy, as the f32 states need (tests: 1e-5):
//   rows × state:  the bf16 rows are exact; the f32 state goes in as hi and lo
//                  (two MMAs), w_t multiplies the f32 accumulator afterwards;
//   token reduce:  w_t·a[t, m] is formed in f32 as on the CPU, then split; b is
//                  exact. Each 64-token sub-block accumulates from zero and is
//                  added to the running f32 total with IEEE adds, so no
//                  accumulator sees more than 8 MMAs (tensor cores' f32
//                  accumulation does not round to nearest).
// Rounding the state or w_t·a once to bf16 would cost ~2⁻⁹ relative; the
// second MMA is cheap here, the kernels being bound by memory (d = 64: 2·d²
// FLOPs per 4·d bytes of rows and output, 32 FLOP/byte).
// Contraction widths above 256 (rows × state; shared memory holds the state
// slice) take the CUDA-core kernels in bf16 too.
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "core/cuda/cuda_runtime.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/kv_state_kernels.h"

namespace linpar::cuda {

namespace {

namespace wmma = nvcuda::wmma;
using bf16_t = __nv_bfloat16;

constexpr int kTile = 64;      // output and state tiles: rows and columns; tokens per sub-block
constexpr int kStep = 32;      // CUDA-core kernels: reduction step (state rows or tokens)
constexpr int kThreads = 256;  // 8 warps; CUDA-core kernels: 16 × 16, a 4 × 4 block each
constexpr int kWarps = kThreads / 32;
constexpr int kSide = 16;
constexpr int kPadH = 8;                    // bf16 after each shared row (16 bytes): spreads banks
constexpr int kPadF = 4;                    // f32 after each shared row (16 bytes)
constexpr int kLdTile = kTile + kPadH;      // row stride of a 64-wide bf16 shared tile
constexpr int kLdStage = kTile + kPadF;     // row stride of the f32 staging tile
constexpr int kMaxTensorCoreWidth = 256;    // rows × state: largest contraction on tensor cores
constexpr int64_t kResidentCtas = 3 * 132;  // tensor-core CTAs resident at once on an H100/H200
constexpr int64_t kMinSpanTokens = 256;     // token reduce: the shortest span a CTA sums
constexpr int64_t kMaxTilesPerCta = 8;      // rows × state: 64-token tiles per CTA, at most
static_assert(kThreads == 4 * kTile && kWarps == 8, "tile ownership below assumes these");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16_t, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16_t, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16_t, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

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

__host__ __device__ inline int round_up(int x, int m) { return (x + m - 1) / m * m; }
__host__ __device__ inline int tiles_of(int64_t n) {
  return static_cast<int>((n + kTile - 1) / kTile);
}
__host__ __device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Out of line: the double exp would otherwise hold registers the tensor-core
// kernels need for their tiles in flight (only 64 threads call it per tile).
__device__ __noinline__ float token_weight(double slope, TokenWeights w, int64_t t) {
  return static_cast<float>(exp(-slope * (w.base + w.step * static_cast<double>(t))));
}

// ---- Moving 64×64 bf16 blocks --------------------------------------------------

// The 16 elements of a 64×64 bf16 block thread threadIdx.x moves: two runs of
// 8 consecutive columns, consecutive threads on consecutive runs so that
// global accesses coalesce, held as raw 16-byte vectors between the global
// load and the shared store (half the registers of f32: more CTAs per SM).
// kVec: the global rows are 16-byte aligned and whole runs valid, so a run is
// one 16-byte load; otherwise (odd widths or offsets) 8 loads, bounds per element.
template <bool kVec>
struct Block {
  static constexpr int kWidth = 8;
  static constexpr int kGroups = kTile * kTile / kThreads / kWidth;
  static constexpr int kRunsPerRow = kTile / kWidth;
  uint4 run[kGroups];

  __device__ static int row(int g) {
    return (static_cast<int>(threadIdx.x) + kThreads * g) / kRunsPerRow;
  }
  __device__ static int col(int g) {
    return (static_cast<int>(threadIdx.x) + kThreads * g) % kRunsPerRow * kWidth;
  }

  // Rows [0, rows) × columns [0, cols) of the block at src (row stride ld),
  // zeros elsewhere. kVec: src and ld·2 bytes 16-byte aligned, cols a multiple of 8.
  __device__ void load(const bf16_t* src, int64_t ld, int rows, int cols) {
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const int r = row(g), c = col(g);
      run[g] = make_uint4(0, 0, 0, 0);
      if (r >= rows) continue;
      const bf16_t* p = src + r * ld + c;
      if constexpr (kVec) {
        if (c < cols) run[g] = *reinterpret_cast<const uint4*>(p);
      } else {
        bf16_t* e = reinterpret_cast<bf16_t*>(&run[g]);
#pragma unroll
        for (int j = 0; j < kWidth; ++j)
          if (c + j < cols) e[j] = p[j];
      }
    }
  }

  // Shared [64][ld] bf16 (ld a multiple of 8) ← the block as it is.
  __device__ void store(bf16_t* dst, int ld) const {
#pragma unroll
    for (int g = 0; g < kGroups; ++g)
      *reinterpret_cast<uint4*>(dst + row(g) * ld + col(g)) = run[g];
  }

  // Run g in f32.
  __device__ void floats(int g, float* x) const {
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&run[g]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(pairs[i]);
      x[2 * i] = f.x;
      x[2 * i + 1] = f.y;
    }
  }
};

// v = hi + lo with hi = bf16(v) and lo = bf16(v − hi) (v − hi is exact in f32).
__device__ inline void split_bf16(float v, float& hi, float& lo) {
  hi = __bfloat162float(__float2bfloat16_rn(v));
  lo = isfinite(hi) ? v - hi : 0.0f;
}

// Shared hi, lo [64][ld] bf16 ← the halves of w[row] · x, the product in f32.
template <bool kVec>
__device__ inline void store_split(const Block<kVec>& x, const float* w, bf16_t* hi, bf16_t* lo,
                                   int ld) {
  using B = Block<kVec>;
#pragma unroll
  for (int g = 0; g < B::kGroups; ++g) {
    const int r = B::row(g), at = r * ld + B::col(g);
    const float wr = w[r];
    float v[B::kWidth], h[B::kWidth], l[B::kWidth];
    x.floats(g, v);
#pragma unroll
    for (int j = 0; j < B::kWidth; ++j) split_bf16(wr * v[j], h[j], l[j]);
    store_vec<B::kWidth>(hi + at, h);
    store_vec<B::kWidth>(lo + at, l);
  }
}

// ---- CUDA-core kernels (f32 operands; bf16 beyond the tensor-core widths) -------

// out[t, n] += w_t Σ_k rows[t, k] · S(k, n) for one (batch, head), where S(k, n)
// is state[k·N + n] (state [K, N]) or, transposed, state[n·K + k] (state [N, K]).
// rows: [length, K], out: [length, N]. Grid (token tiles, batch·heads, column tiles).
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
      a_tile[kk][r] = (t < length && k0 + kk < K) ? ld(a, t * K + k0 + kk) : 0.0f;
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
      st(o, at, ld(o, at) + w[r] * acc[i][j]);
    }
  }
}

// The token reduce's first pass: one (batch, head)'s partial sum over a span
// of tokens, Σ_{t in span} w_t a[t, m] b[t, n] for a 64×64 tile of the state.
struct SpanSum {
  const void* a;  // [BH, length, M]
  const void* b;  // [BH, length, N]
  float* partials;  // [BH, splits, 64·tiles_m, 64·tiles_n]: whole tiles, zero where m ≥ M, n ≥ N
  int M, N, tiles_m, tiles_n, splits;
  int64_t heads, length, span;  // tokens [span·split, span·(split + 1)) ∩ [0, length)
  TokenWeights weights;
  Slopes slopes;
};

struct SpanTile {
  int m0, n0, split;
  int64_t bh, begin, end;
  __device__ explicit SpanTile(const SpanSum& p)
      : m0(static_cast<int>(blockIdx.x) / p.tiles_n * kTile),
        n0(static_cast<int>(blockIdx.x) % p.tiles_n * kTile),
        split(static_cast<int>(blockIdx.y)),
        bh(blockIdx.z),
        begin(p.span * split),
        end(min64(p.length, begin + p.span)) {}
  __device__ float* out(const SpanSum& p) const {
    const int64_t ldp = static_cast<int64_t>(p.tiles_n) * kTile;
    return p.partials + ((bh * p.splits + split) * p.tiles_m * kTile + m0) * ldp + n0;
  }
};

// CUDA cores, grid (tiles_m·tiles_n, splits, batch·heads): the span in steps of 32 tokens.
template <typename T>
__global__ void span_sum_kernel(const __grid_constant__ SpanSum p) {
  __shared__ float a_tile[kStep][kTile];  // [token][m], weighted
  __shared__ float b_tile[kStep][kTile];  // [token][n]
  __shared__ float w[kStep];
  const SpanTile tile(p);
  const int tx = static_cast<int>(threadIdx.x) % kSide, ty = static_cast<int>(threadIdx.x) / kSide;
  const double slope = p.slopes.s[tile.bh % p.heads];
  const T* a = static_cast<const T*>(p.a) + tile.bh * p.length * p.M;
  const T* b = static_cast<const T*>(p.b) + tile.bh * p.length * p.N;
  const int M = p.M, N = p.N, m0 = tile.m0, n0 = tile.n0;
  float acc[4][4] = {};
  for (int64_t t0 = tile.begin; t0 < tile.end; t0 += kStep) {
    if (threadIdx.x < kStep) {
      const int64_t t = t0 + threadIdx.x;
      w[threadIdx.x] = t < tile.end ? token_weight(slope, p.weights, t) : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int tt = i / kTile, c = i % kTile;
      const int64_t t = t0 + tt;
      const bool token = t < tile.end;
      a_tile[tt][c] = (token && m0 + c < M) ? w[tt] * ld(a, t * M + m0 + c) : 0.0f;
      b_tile[tt][c] = (token && n0 + c < N) ? ld(b, t * N + n0 + c) : 0.0f;
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
  float* out = tile.out(p);
  const int64_t ldp = static_cast<int64_t>(p.tiles_n) * kTile;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[(ty + kSide * i) * ldp + tx + kSide * j] = acc[i][j];
}

// ---- Tensor-core kernels (bf16 operands) ----------------------------------------

// Tensor cores, grid (tiles_m·tiles_n, splits, batch·heads): the span in 64-token
// sub-blocks. Warp w owns the 16×16 state tiles (w % 4, 2·(w / 4) + j), j = 0, 1.
template <bool kVec>
__global__ void __launch_bounds__(kThreads, 3)
    span_sum_tc_kernel(const __grid_constant__ SpanSum p) {
  __shared__ __align__(128) bf16_t a_hi[kTile * kLdTile];  // [token][m]: hi(w_t a[t, m])
  __shared__ __align__(128) bf16_t a_lo[kTile * kLdTile];  // [token][m]: lo(w_t a[t, m])
  __shared__ __align__(128) bf16_t b_s[kTile * kLdTile];   // [token][n]
  __shared__ float w_s[2][kTile];                          // weights of this and the next sub-block
  const SpanTile tile(p);
  const double slope = p.slopes.s[tile.bh % p.heads];
  const bf16_t* a_g = static_cast<const bf16_t*>(p.a) + tile.bh * p.length * p.M + tile.m0;
  const bf16_t* b_g = static_cast<const bf16_t*>(p.b) + tile.bh * p.length * p.N + tile.n0;
  const int a_cols = min(kTile, p.M - tile.m0), b_cols = min(kTile, p.N - tile.n0);
  const int subs = static_cast<int>((tile.end - tile.begin + kTile - 1) / kTile);
  const int warp = static_cast<int>(threadIdx.x) / 32, mf = warp % 4, nf = 2 * (warp / 4);

  Block<kVec> xa, xb;  // the next sub-block on its way to shared memory
  auto fetch = [&](int sub) {
    const int64_t t0 = tile.begin + static_cast<int64_t>(sub) * kTile;
    const int rows = static_cast<int>(min64(kTile, tile.end - t0));
    xa.load(a_g + t0 * p.M, p.M, rows, a_cols);
    xb.load(b_g + t0 * p.N, p.N, rows, b_cols);
    if (threadIdx.x < kTile) {
      const int64_t t = t0 + threadIdx.x;
      w_s[sub & 1][threadIdx.x] = t < tile.end ? token_weight(slope, p.weights, t) : 0.0f;
    }
  };
  FragC total[2];
  for (FragC& f : total) wmma::fill_fragment(f, 0.0f);
  if (subs > 0) fetch(0);
  for (int sub = 0; sub < subs; ++sub) {
    __syncthreads();  // the previous sub-block's products are done with the tiles; w_s written
    store_split(xa, w_s[sub & 1], a_hi, a_lo, kLdTile);
    xb.store(b_s, kLdTile);
    __syncthreads();
    if (sub + 1 < subs) fetch(sub + 1);  // w_s[(sub + 1) & 1]: last read before the barrier above
    FragC part[2];
    for (FragC& f : part) wmma::fill_fragment(f, 0.0f);
#pragma unroll
    for (int kk = 0; kk < kTile; kk += 16) {
      FragAt hi, lo;
      wmma::load_matrix_sync(hi, a_hi + kk * kLdTile + 16 * mf, kLdTile);
      wmma::load_matrix_sync(lo, a_lo + kk * kLdTile + 16 * mf, kLdTile);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        FragB b;
        wmma::load_matrix_sync(b, b_s + kk * kLdTile + 16 * (nf + j), kLdTile);
        wmma::mma_sync(part[j], hi, b, part[j]);
        wmma::mma_sync(part[j], lo, b, part[j]);
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j)
      for (int e = 0; e < part[j].num_elements; ++e) total[j].x[e] += part[j].x[e];
  }
  float* out = tile.out(p);
  const int ldp = p.tiles_n * kTile;
#pragma unroll
  for (int j = 0; j < 2; ++j)
    wmma::store_matrix_sync(out + 16 * mf * ldp + 16 * (nf + j), total[j], ldp,
                            wmma::mem_row_major);
}

// Rows × state on tensor cores: up to two problems in one launch (both halves
// of chunk_state_backward), the same tokens and weights.
struct RowsProblem {
  const bf16_t* rows;  // [BH, length, K]
  const float* state;  // [BH, K, N], or [BH, N, K] when transposed
  bf16_t* out;         // [BH, length, N], accumulated
  int K, N;
  bool transposed;
};

struct RowsArgs {
  RowsProblem problem[2];
  int count;
  int tiles_per_cta;  // 64-token tiles a CTA walks with its slice of the state loaded once
  int64_t heads, length;
  TokenWeights weights;
  Slopes slopes;
};

// Byte offsets of the rows × state kernel's shared arrays for contraction K:
// hi(S) and lo(S) as [round_up(K, 16)][kLdTile] bf16; the row tile
// [64][round_up(K, 64) + 8] bf16, which the [64][kLdStage] f32 stage of the
// products reuses; the tile's 64 weights. K = 64: 35 KB; 128: 54 KB; 256: 105 KB.
struct RowsShared {
  size_t hi, lo, rows, weights, bytes;
  __host__ __device__ explicit RowsShared(int K) {
    const size_t state = sizeof(bf16_t) * static_cast<size_t>(round_up(K, 16)) * kLdTile;
    const size_t rows_tile =
        sizeof(bf16_t) * kTile * static_cast<size_t>(round_up(K, kTile) + kPadH);
    const size_t stage = sizeof(float) * kTile * kLdStage;
    hi = 0;
    lo = state;
    rows = 2 * state;
    weights = rows + (rows_tile > stage ? rows_tile : stage);
    bytes = weights + sizeof(float) * kTile;
  }
};

// Grid (column tiles of every problem, token-tile groups, batch·heads); the
// column tile varies fastest so the CTAs reading the same rows run together.
// Warp w computes the 16×16 output tiles (w / 2, 2·(w % 2) + j), j = 0, 1.
template <int kMaxK, bool kVec>
__global__ void __launch_bounds__(kThreads, kMaxK <= 128 ? 3 : 2)
    rows_times_state_tc_kernel(const __grid_constant__ RowsArgs args) {
  constexpr int kBlocks = kMaxK / kTile;  // 64-column blocks of a row tile
  using B = Block<kVec>;
  int which = 0, tile = static_cast<int>(blockIdx.x);
  while (which + 1 < args.count && tile >= tiles_of(args.problem[which].N)) {
    tile -= tiles_of(args.problem[which].N);
    ++which;
  }
  const RowsProblem& p = args.problem[which];
  const int64_t bh = blockIdx.z, length = args.length;
  const int K = p.K, N = p.N, k_pad = round_up(K, 16), ld_rows = round_up(K, kTile) + kPadH;
  const int n0 = tile * kTile, cols = min(kTile, N - n0);
  const int warp = static_cast<int>(threadIdx.x) / 32, rf = warp / 2, cf = 2 * (warp % 2);
  const double slope = args.slopes.s[bh % args.heads];

  extern __shared__ __align__(128) unsigned char shared[];
  const RowsShared layout(K);
  bf16_t* s_hi = reinterpret_cast<bf16_t*>(shared + layout.hi);
  bf16_t* s_lo = reinterpret_cast<bf16_t*>(shared + layout.lo);
  bf16_t* r_s = reinterpret_cast<bf16_t*>(shared + layout.rows);
  float* stage = reinterpret_cast<float*>(shared + layout.rows);  // after the products
  float* w_s = reinterpret_cast<float*>(shared + layout.weights);

  // The state's columns [n0, n0 + 64) as hi + lo, zero beyond K and N.
  const float* s_g = p.state + bh * K * N;
  for (int i = static_cast<int>(threadIdx.x); i < k_pad * kTile; i += kThreads) {
    const int k = p.transposed ? i % k_pad : i / kTile, c = p.transposed ? i / k_pad : i % kTile;
    float v = 0.0f;
    if (k < K && n0 + c < N)
      v = p.transposed ? s_g[static_cast<int64_t>(n0 + c) * K + k]
                       : s_g[static_cast<int64_t>(k) * N + n0 + c];
    float hi, lo;
    split_bf16(v, hi, lo);
    s_hi[k * kLdTile + c] = __float2bfloat16_rn(hi);
    s_lo[k * kLdTile + c] = __float2bfloat16_rn(lo);
  }

  const bf16_t* rows_g = p.rows + bh * length * K;
  bf16_t* out_g = p.out + bh * length * N + n0;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * args.tiles_per_cta * kTile;
  const int tiles =
      static_cast<int>(min64(args.tiles_per_cta, (length - first + kTile - 1) / kTile));
  B x[kBlocks];  // the next row tile on its way to shared memory
  auto fetch = [&](int64_t t0) {
    const int rows = static_cast<int>(min64(kTile, length - t0));
#pragma unroll
    for (int kb = 0; kb < kBlocks; ++kb)
      if (kTile * kb < K)
        x[kb].load(rows_g + t0 * K + kTile * kb, K, rows, min(kTile, K - kTile * kb));
  };
  if (tiles > 0) fetch(first);
  for (int i = 0; i < tiles; ++i) {
    const int64_t t0 = first + static_cast<int64_t>(i) * kTile;
    const int rows = static_cast<int>(min64(kTile, length - t0));
    B o;  // the output tile, loaded while the products run
    o.load(out_g + t0 * N, N, rows, cols);
    __syncthreads();  // the previous tile's epilogue is done with the stage and w_s
#pragma unroll
    for (int kb = 0; kb < kBlocks; ++kb)
      if (kTile * kb < K) x[kb].store(r_s + kTile * kb, ld_rows);
    if (threadIdx.x < kTile) {
      const int r = static_cast<int>(threadIdx.x);
      w_s[r] = r < rows ? token_weight(slope, args.weights, t0 + r) : 0.0f;
    }
    __syncthreads();
    if (i + 1 < tiles) fetch(t0 + kTile);
    FragC acc[2];
    for (FragC& f : acc) wmma::fill_fragment(f, 0.0f);
    for (int kk = 0; kk < k_pad; kk += 16) {
      FragA a;
      wmma::load_matrix_sync(a, r_s + 16 * rf * ld_rows + kk, ld_rows);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        FragB b;
        wmma::load_matrix_sync(b, s_hi + kk * kLdTile + 16 * (cf + j), kLdTile);
        wmma::mma_sync(acc[j], a, b, acc[j]);
        wmma::load_matrix_sync(b, s_lo + kk * kLdTile + 16 * (cf + j), kLdTile);
        wmma::mma_sync(acc[j], a, b, acc[j]);
      }
    }
    __syncthreads();  // every warp is done with r_s, which the stage overwrites
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(stage + 16 * rf * kLdStage + 16 * (cf + j), acc[j], kLdStage,
                              wmma::mem_row_major);
    __syncthreads();
#pragma unroll
    for (int g = 0; g < B::kGroups; ++g) {
      const int r = B::row(g), c = B::col(g);
      if (r >= rows || c >= cols) continue;
      float y[B::kWidth], z[B::kWidth];
      o.floats(g, y);
      load_vec<4>(stage + r * kLdStage + c, z);  // 16-byte shared loads
      load_vec<4>(stage + r * kLdStage + c + 4, z + 4);
#pragma unroll
      for (int j = 0; j < B::kWidth; ++j) y[j] += w_s[r] * z[j];
      bf16_t* dst = out_g + (t0 + r) * N + c;
      if constexpr (kVec) {
        store_vec<8>(dst, y);
      } else {
        for (int j = 0; j < B::kWidth && c + j < cols; ++j) dst[j] = __float2bfloat16_rn(y[j]);
      }
    }
  }
}

// ---- Second pass of the token reduce, and the state update ----------------------

// state[bh, m, n] = (accumulate ? state : 0) + Σ_split partials[bh, split, m, n],
// the splits in order.
__global__ void sum_partials_kernel(const float* partials, int splits, int64_t ld_m, int64_t ld_n,
                                    int M, int N, int64_t count, float* state, bool accumulate) {
  const int64_t per_head = static_cast<int64_t>(M) * N, tile = ld_m * ld_n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t bh = i / per_head, mn = i % per_head;
    const float* p = partials + bh * splits * tile + (mn / N) * ld_n + mn % N;
    float sum = 0.0f;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) sum += p[s * tile];
    state[i] = accumulate ? state[i] + sum : sum;
  }
}

__global__ void state_decay_add_kernel(Decays decays, int64_t heads, int64_t state_size, int64_t n,
                                       const float* a, const float* b, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = decays.d[(i / state_size) % heads] * a[i] + b[i];
  }
}

// ---- Host side --------------------------------------------------------------------

Slopes slopes_of(const KvStateDims& d, const double* slopes) {
  Slopes s{};
  for (int64_t h = 0; h < d.heads; ++h) s.s[h] = slopes[h];
  return s;
}

// Device scratch from the caching allocator, handed back once the launches
// that use it are queued: every kernel runs on the legacy stream, so the
// allocator gives the block out again only to work queued behind them.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(bytes), ptr_(device_allocator().allocate(bytes)) {}
  ~Scratch() { device_allocator().deallocate(ptr_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* floats() const { return static_cast<float*>(ptr_); }

 private:
  size_t bytes_;
  void* ptr_;
};

// Whether 16-byte vectors fit a [.., width] bf16 operand at p.
bool vectors_fit(const void* p, int64_t width) { return width % 8 == 0 && aligned16(p); }

// One rows × state product: out (+)= diag(w) rows · S (or · Sᵀ);
// rows: [B·H, C, K], out: [B·H, C, N].
struct RowsOperands {
  const void* rows;
  int K;
  const float* state;
  bool transposed;
  void* out;
  int N;
};

template <int kMaxK, bool kVec>
void launch_rows_tc(const RowsArgs& args, dim3 grid) {
  int widest = 0;
  for (int i = 0; i < args.count; ++i) widest = std::max(widest, args.problem[i].K);
  const size_t bytes = RowsShared(widest).bytes;  // up to 105 KB (K = 256)
  CUDA_CHECK(cudaFuncSetAttribute(rows_times_state_tc_kernel<kMaxK, kVec>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)));
  rows_times_state_tc_kernel<kMaxK, kVec><<<grid, kThreads, bytes, cudaStreamLegacy>>>(args);
}

template <bool kVec>
void launch_rows_tc(const RowsArgs& args, dim3 grid, int widest) {
  if (widest <= 64) {
    launch_rows_tc<64, kVec>(args, grid);
  } else if (widest <= 128) {
    launch_rows_tc<128, kVec>(args, grid);
  } else {
    launch_rows_tc<256, kVec>(args, grid);
  }
}

void rows_times_state(const KvStateDims& d, const double* slopes, bool bf16, TokenWeights weights,
                      std::initializer_list<RowsOperands> ops) {
  const int64_t bh = d.batch * d.heads;
  if (bh == 0 || d.length == 0) return;
  int widest = 0, column_tiles = 0;
  bool vec = true;
  for (const RowsOperands& op : ops) {
    widest = std::max(widest, op.K);
    column_tiles += tiles_of(op.N);
    vec = vec && vectors_fit(op.rows, op.K) && vectors_fit(op.out, op.N);
  }
  if (column_tiles == 0) return;
  const Slopes s = slopes_of(d, slopes);
  if (bf16 && widest <= kMaxTensorCoreWidth) {
    RowsArgs args{};
    for (const RowsOperands& op : ops) {
      args.problem[args.count++] = {static_cast<const bf16_t*>(op.rows),
                                    op.state,
                                    static_cast<bf16_t*>(op.out),
                                    op.K,
                                    op.N,
                                    op.transposed};
    }
    // Several token tiles per CTA amortise its load of the state slice, while
    // keeping two or more waves of CTAs, so that the last one's tail stays
    // short (tnl-385m, C = 8K: 2 tiles, 1024 CTAs).
    const int64_t token_tiles = tiles_of(d.length);
    const int64_t one_tile_ctas = token_tiles * column_tiles * bh;
    const int64_t per_cta = one_tile_ctas / (2 * kResidentCtas);
    args.tiles_per_cta = static_cast<int>(per_cta < 1 ? 1 : min64(per_cta, kMaxTilesPerCta));
    args.heads = d.heads;
    args.length = d.length;
    args.weights = weights;
    args.slopes = s;
    const dim3 grid(
        static_cast<unsigned>(column_tiles),
        static_cast<unsigned>((token_tiles + args.tiles_per_cta - 1) / args.tiles_per_cta),
        static_cast<unsigned>(bh));
    if (vec) {
      launch_rows_tc<true>(args, grid, widest);
    } else {
      launch_rows_tc<false>(args, grid, widest);
    }
    CUDA_CHECK(cudaGetLastError());
    return;
  }
  for (const RowsOperands& op : ops) {
    if (op.N == 0) continue;
    const dim3 grid(tiles_of(d.length), static_cast<unsigned>(bh), tiles_of(op.N));
    auto launch = [&]<typename T>() {
      const T* r = static_cast<const T*>(op.rows);
      T* o = static_cast<T*>(op.out);
      if (op.transposed) {
        rows_times_state_kernel<T, true><<<grid, kThreads, 0, cudaStreamLegacy>>>(
            s, d.heads, d.length, op.K, op.N, weights, r, op.state, o);
      } else {
        rows_times_state_kernel<T, false><<<grid, kThreads, 0, cudaStreamLegacy>>>(
            s, d.heads, d.length, op.K, op.N, weights, r, op.state, o);
      }
    };
    if (bf16) {
      launch.template operator()<bf16_t>();
    } else {
      launch.template operator()<float>();
    }
    CUDA_CHECK(cudaGetLastError());
  }
}

// S (+)= Σ_t w_t a_tᵀ b_t; a: [B·H, C, M], b: [B·H, C, N], S: [B·H, M, N] f32.
void token_reduce(const KvStateDims& d, const double* slopes, bool bf16, TokenWeights weights,
                  const void* a, int M, const void* b, int N, float* state, bool accumulate) {
  const int64_t bh = d.batch * d.heads;
  if (bh == 0 || M == 0 || N == 0) return;
  if (accumulate && d.length == 0) return;
  SpanSum p{};
  p.a = a;
  p.b = b;
  p.M = M;
  p.N = N;
  p.tiles_m = tiles_of(M);
  p.tiles_n = tiles_of(N);
  // Spans of whole sub-blocks, at least kMinSpanTokens (the partial tile a CTA
  // writes stays small against what it reads), as many as one wave of CTAs
  // takes (tnl-385m, C = 8K: 22 spans of 384 tokens, 352 CTAs); longer chunks
  // give longer spans. A function of the shape only: reproducible anywhere.
  const int64_t tiles = static_cast<int64_t>(p.tiles_m) * p.tiles_n;
  const int64_t wanted = std::max<int64_t>(1, kResidentCtas / (bh * tiles));
  const int64_t even = (d.length + wanted - 1) / wanted;
  p.span = std::max(kMinSpanTokens, (even + kTile - 1) / kTile * kTile);
  p.splits = static_cast<int>(std::max<int64_t>(1, (d.length + p.span - 1) / p.span));
  p.heads = d.heads;
  p.length = d.length;
  p.weights = weights;
  p.slopes = slopes_of(d, slopes);
  const int64_t ld_m = static_cast<int64_t>(p.tiles_m) * kTile,
                ld_n = static_cast<int64_t>(p.tiles_n) * kTile;
  const Scratch partials(sizeof(float) * static_cast<size_t>(bh * p.splits * ld_m * ld_n));
  p.partials = partials.floats();

  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.splits),
                  static_cast<unsigned>(bh));
  if (bf16) {
    if (vectors_fit(a, M) && vectors_fit(b, N)) {
      span_sum_tc_kernel<true><<<grid, kThreads, 0, cudaStreamLegacy>>>(p);
    } else {
      span_sum_tc_kernel<false><<<grid, kThreads, 0, cudaStreamLegacy>>>(p);
    }
  } else {
    span_sum_kernel<float><<<grid, kThreads, 0, cudaStreamLegacy>>>(p);
  }
  CUDA_CHECK(cudaGetLastError());
  const int64_t count = bh * M * N;
  sum_partials_kernel<<<grid_blocks(count, kThreads), kThreads, 0, cudaStreamLegacy>>>(
      p.partials, p.splits, ld_m, ld_n, M, N, count, state, accumulate);
  CUDA_CHECK(cudaGetLastError());
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
  // dK += diag(w) V dKVᵀ: rows V [C, dv] times dKVᵀ [dv, dk];
  // dV += diag(w) K dKV: rows K [C, dk] times dKV [dk, dv]. One launch.
  rows_times_state(d, slopes, bf16, key_weights(d),
                   {{v, dvh, d_kv, /*transposed=*/true, dk, dkh},
                    {k, dkh, d_kv, /*transposed=*/false, dv, dvh}});
}

void inter_chunk_forward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                         const float* kv_in, void* o) {
  rows_times_state(
      d, slopes, bf16, query_weights(),
      {{q, static_cast<int>(d.dk), kv_in, /*transposed=*/false, o, static_cast<int>(d.dv)}});
}

void inter_chunk_backward(const KvStateDims& d, const double* slopes, bool bf16, const void* q,
                          const float* kv_in, const void* d_o, void* dq, float* d_kv_in) {
  const int dkh = static_cast<int>(d.dk), dvh = static_cast<int>(d.dv);
  // dQ += diag(w) dO KV_inᵀ: rows dO [C, dv] times KV_inᵀ [dv, dk].
  rows_times_state(d, slopes, bf16, query_weights(),
                   {{d_o, dvh, kv_in, /*transposed=*/true, dq, dkh}});
  // dKV_in += (diag(w) Q)ᵀ dO.
  token_reduce(d, slopes, bf16, query_weights(), q, dkh, d_o, dvh, d_kv_in, /*accumulate=*/true);
}

void state_decay_add(int64_t batch, int64_t heads, int64_t state_size, const float* decays,
                     const float* a, const float* b, float* out) {
  const int64_t n = batch * heads * state_size;
  if (n == 0) return;
  Decays d{};
  for (int64_t h = 0; h < heads; ++h) d.d[h] = decays[h];
  state_decay_add_kernel<<<grid_blocks(n, kThreads), kThreads, 0, cudaStreamLegacy>>>(
      d, heads, state_size, n, a, b, out);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
