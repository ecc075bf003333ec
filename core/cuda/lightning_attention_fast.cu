// Lightning attention on bf16 tensor cores (Lightning Attention-2, arXiv
// 2401.04658: masked products inside blocks, a state across blocks),
// parallel over chunks of the sequence instead of one CTA walking all of it.
//
// Every product of the forward and the backward is one instance of a chain
// over the 64-token sub-blocks of a sequence (per batch·head, λ = e^{−slope},
// t, s positions inside a sub-block of m ≤ 64 tokens, Z the running d_a × d_c
// state entering the sub-block in the walking direction):
//   forward: out = ((A Bᵀ) ⊙ D) C + diag(λ^{t+1}) A Z,    D[t,s] = λ^{t−s}, s ≤ t
//            Z  ← λ^m Z + (diag(λ^{m−1−s}) B)ᵀ C           (sub-blocks in order)
//   reverse: out = ((A Bᵀ) ⊙ D) C + diag(λ^{m−1−t}) A Z,  D[t,s] = λ^{s−t}, s ≥ t
//            Z  ← λ^m Z + (diag(λ^{s+1}) B)ᵀ C             (sub-blocks backward)
// o  = forward(Q, K, V, S)     dQ = forward(dO, V, K, Sᵀ)
// dV = reverse(K, Q, dO, G)    dK = reverse(V, dO, Q, Gᵀ)
// with S = KV the state before a sub-block and G the gradient of the state
// after it (lightning_attention_backward.cpp derives both).
//
// Three launches per pass. The sequence is cut into chunks of `chunk` tokens
// (a multiple of 64, picked so that the last launch has a few CTAs per SM):
//   1. chunk_sum_kernel, grid (64-column tiles of C, chunks, batch·heads):
//      each chunk's own contribution to the state, Σ_t w_t b_tᵀ c_t (f32);
//   2. scan_kernel, grid (state elements / 1024, batch·heads, states): in
//      place, the state entering every chunk, from KV_in (or dKV_out);
//      writes KV_out (dKV_in) when asked;
//   3. chain_kernel, grid (64-column tiles of every chain, chunks,
//      batch·heads): walks its chunk's sub-blocks from that state, the state
//      kept in WMMA accumulators (f32) and mirrored in shared memory as bf16
//      for the inter-block product.
// WMMA fragments' element layout is unspecified, so every elementwise step
// (the decay mask, the per-row decays) goes through shared memory.
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>

#include "core/cuda/cuda_check.h"
#include "core/cuda/lightning_attention_fast.h"

namespace linpar::cuda::lightning_fast {

namespace {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int kSub = 64;   // tokens per sub-block: the masked product's tile
constexpr int kTile = 64;  // columns of C (of the output and the state) per CTA
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kPadH = 8;  // bf16 elements (16 bytes) after each shared row: spreads banks
constexpr int kPadF = 4;  // f32 elements (16 bytes)
constexpr int kLdTile = kTile + kPadH;   // row stride of C, of the bf16 state
constexpr int kLdScore = kSub + kPadH;   // row stride of the masked scores (bf16)
constexpr int kLdStage = kTile + kPadF;  // row stride of the f32 staging tile
constexpr int kMaxChains = 3;
constexpr int kMaxSums = 2;
constexpr int kMaxScans = 2;
constexpr int kScanAhead = 8;  // chunk states loaded ahead in the scan
static_assert(kThreads == 4 * kSub, "elementwise passes give each thread a quarter of a row");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

struct Slopes {
  float s[kMaxAttentionHeads];
};

struct Geometry {
  int64_t length;  // N
  int64_t chunk;   // tokens per chunk, a multiple of kSub
  int64_t chunks;  // ⌈N / chunk⌉
  int64_t heads;
};

__host__ __device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ inline int tiles_of(int width) { return (width + kTile - 1) / kTile; }

// ---- Shared-memory helpers ---------------------------------------------------

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&pair);
}

__device__ __forceinline__ uint4 pack_bf16x8(const float* x) {
  uint4 r;
  r.x = pack_bf16x2(x[0], x[1]);
  r.y = pack_bf16x2(x[2], x[3]);
  r.z = pack_bf16x2(x[4], x[5]);
  r.w = pack_bf16x2(x[6], x[7]);
  return r;
}

__device__ __forceinline__ uint32_t scale_bf16x2(uint32_t word, float w) {
  const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&word));
  return pack_bf16x2(f.x * w, f.y * w);
}

__device__ __forceinline__ uint4 scale_bf16x8(uint4 v, float w) {
  return make_uint4(scale_bf16x2(v.x, w), scale_bf16x2(v.y, w), scale_bf16x2(v.z, w),
                    scale_bf16x2(v.w, w));
}

// A [kSub, width] bf16 block held in registers on its way to shared memory,
// so that the next sub-block's loads are in flight while this one computes.
// Every elementwise pass of this file gives thread i row i / 4 of a 64-row
// block and the columns of quarter i % 4 of it (here 16-byte vectors
// i % 4 + 4u): per-thread offsets stay constants, nothing expensive is
// recomputed or kept live across sub-blocks.
template <int kVecs>
struct Rows {
  uint4 v[kVecs];
};

__device__ __forceinline__ int my_row() { return static_cast<int>(threadIdx.x) >> 2; }
__device__ __forceinline__ int my_quarter() { return static_cast<int>(threadIdx.x) & 3; }

// Rows [0, rows) and columns [0, valid) of a block at `src` (row stride
// ld_src elements); zeros elsewhere. valid: a multiple of 8.
template <int kVecs>
__device__ __forceinline__ void load_rows(Rows<kVecs>& r, const bf16* src, int64_t ld_src, int rows,
                                          int valid) {
  const int row = my_row(), q = my_quarter(), valid_vecs = valid / 8;
  const bf16* p = src + row * ld_src + 8 * q;
#pragma unroll
  for (int u = 0; u < kVecs; ++u) {
    r.v[u] = make_uint4(0, 0, 0, 0);
    if (row < rows && q + 4 * u < valid_vecs)
      r.v[u] = __ldg(reinterpret_cast<const uint4*>(p + 32 * u));
  }
}

// Writes the block's first `width` columns (a multiple of 8) to shared memory
// (row stride ld_dst), every row scaled by w (exact when w is 1).
template <int kVecs>
__device__ __forceinline__ void store_rows(const Rows<kVecs>& r, bf16* dst, int ld_dst, int width,
                                           float w) {
  const int row = my_row(), q = my_quarter(), vecs = width / 8;
  bf16* p = dst + row * ld_dst + 8 * q;
#pragma unroll
  for (int u = 0; u < kVecs; ++u) {
    if (q + 4 * u < vecs)
      *reinterpret_cast<uint4*>(p + 32 * u) = w == 1.0f ? r.v[u] : scale_bf16x8(r.v[u], w);
  }
}

// The state tiles a warp owns: tile f = warp + kWarps·i of the
// (d_a/16) × (kTile/16) tiles of Z, at rows 16·(f / 4), columns 16·(f % 4).
// Mirrors them into z_s ([d_a][kLdTile] bf16) through a per-warp 16×16 f32
// scratch.
template <int kFrags>
__device__ __forceinline__ void state_to_shared(const FragC (&state)[kFrags], int z_tiles,
                                                bf16* z_s, float* scratch, int warp, int lane) {
#pragma unroll
  for (int i = 0; i < kFrags; ++i) {
    const int f = warp + kWarps * i;
    if (f >= z_tiles) continue;
    const int zr = f / 4, zc = f % 4;
    wmma::store_matrix_sync(scratch, state[i], 16, wmma::mem_row_major);
    __syncwarp();
    const int row = lane / 2, col = (lane % 2) * 8;
    *reinterpret_cast<uint4*>(z_s + (16 * zr + row) * kLdTile + 16 * zc + col) =
        pack_bf16x8(scratch + row * 16 + col);
    __syncwarp();
  }
}

// ---- 1. Chunk sums -------------------------------------------------------------

// Σ_{t in chunk} w_t b_tᵀ c_t with w_t = λ^{L−1−t} (forward) or λ^{t+1}
// (reverse), t counted from the chunk's start, L its length: [d_b, d_c] f32
// at sums[bh][chunk], for chunks [first_chunk, first_chunk + chunk_count).
struct ChunkSum {
  const bf16* b;  // [BH, N, d_b]
  const bf16* c;  // [BH, N, d_c]
  float* sums;    // [BH, chunks, d_b, d_c]
  int db, dc;
  bool reverse;
  int64_t first_chunk, chunk_count;
};

struct SumArgs {
  ChunkSum sum[kMaxSums];
  int count;
  Geometry g;
  Slopes slopes;
};

size_t sum_shared_bytes(int db) {
  return sizeof(bf16) *
         (static_cast<size_t>(kSub) * (db + kPadH) + static_cast<size_t>(kSub) * kLdTile);
}

template <int kMaxD>
__global__ void __launch_bounds__(kThreads) chunk_sum_kernel(const __grid_constant__ SumArgs args) {
  constexpr int kFrags = kMaxD / 32;  // (d_b/16)·(kTile/16) state tiles over kWarps
  constexpr int kVecsB = kMaxD / 32;  // a quarter of a row of d_b, in 16-byte vectors
  constexpr int kVecsC = kTile / 32;
  int which = 0, tile = static_cast<int>(blockIdx.x);
  while (which + 1 < args.count && tile >= tiles_of(args.sum[which].dc)) {
    tile -= tiles_of(args.sum[which].dc);
    ++which;
  }
  const ChunkSum p = args.sum[which];
  if (static_cast<int64_t>(blockIdx.y) >= p.chunk_count) return;
  const Geometry g = args.g;
  const int64_t chunk = p.first_chunk + blockIdx.y, bh = blockIdx.z;
  const float slope = args.slopes.s[bh % g.heads];
  const int db = p.db, dc = p.dc, ldb = db + kPadH;
  const int col0 = tile * kTile, cols = min(kTile, dc - col0);
  const int warp = static_cast<int>(threadIdx.x) / 32;

  extern __shared__ __align__(128) unsigned char shared[];
  bf16* b_s = reinterpret_cast<bf16*>(shared);  // [kSub][ldb]
  bf16* c_s = b_s + kSub * ldb;                 // [kSub][kLdTile], rows weighted

  const int64_t begin = chunk * g.chunk;
  const int chunk_len = static_cast<int>(min64(g.chunk, g.length - begin));
  const int subs = (chunk_len + kSub - 1) / kSub;
  const bf16* b_g = p.b + bh * g.length * db;
  const bf16* c_g = p.c + bh * g.length * dc + col0;
  const int z_tiles = (db / 16) * (kTile / 16);

  FragC sum[kFrags];
#pragma unroll
  for (int i = 0; i < kFrags; ++i) wmma::fill_fragment(sum[i], 0.0f);

  Rows<kVecsB> b_r;
  Rows<kVecsC> c_r;
  auto fetch = [&](int sub) {
    const int64_t t0 = begin + static_cast<int64_t>(sub) * kSub;
    const int m = static_cast<int>(min64(kSub, g.length - t0));
    load_rows(b_r, b_g + t0 * db, db, m, db);
    load_rows(c_r, c_g + t0 * dc, dc, m, cols);
  };
  fetch(0);
  for (int sub = 0; sub < subs; ++sub) {
    const int m = min(kSub, chunk_len - sub * kSub);
    __syncthreads();  // the previous sub-block's products are done with b_s, c_s
    store_rows(b_r, b_s, ldb, db, 1.0f);
    const int t = sub * kSub + my_row();  // this thread's row, from the chunk's start
    store_rows(c_r, c_s, kLdTile, kTile,
               my_row() < m
                   ? expf(-slope * static_cast<float>(p.reverse ? t + 1 : chunk_len - 1 - t))
                   : 0.0f);
    __syncthreads();
    if (sub + 1 < subs) fetch(sub + 1);
      // Warp w: state tiles (w / 4 + 2i, w % 4), sharing one C̃ fragment per kk.
#pragma unroll 1
    for (int kk = 0; kk < kSub; kk += 16) {
      FragB cb;
      wmma::load_matrix_sync(cb, c_s + kk * kLdTile + 16 * (warp % 4), kLdTile);
#pragma unroll
      for (int i = 0; i < kFrags; ++i) {
        if (warp + kWarps * i >= z_tiles) continue;
        FragAt bt;
        wmma::load_matrix_sync(bt, b_s + kk * ldb + 16 * (warp / 4 + 2 * i), ldb);
        wmma::mma_sync(sum[i], bt, cb, sum[i]);
      }
    }
  }
  float* out = p.sums + (bh * g.chunks + chunk) * db * dc;
#pragma unroll
  for (int i = 0; i < kFrags; ++i) {
    const int f = warp + kWarps * i, zr = f / 4, zc = f % 4;
    if (f < z_tiles && 16 * zc < cols)
      wmma::store_matrix_sync(out + 16 * zr * dc + col0 + 16 * zc, sum[i], dc, wmma::mem_row_major);
  }
}

// ---- 2. Scan over chunks ---------------------------------------------------------

// In place: states[bh][c] ← the state entering chunk c in the walking
// direction (forward: before it; reverse: after it), starting from `initial`
// (zero when null), Z ← λ^{L_c} Z + sum_c over the chunks c in
// [first_sum, end_sum) that hold a sum; final_state ← Z after every chunk.
struct Scan {
  float* states;         // [BH, chunks, state_size]
  const float* initial;  // [BH, state_size] or null
  float* final_state;    // [BH, state_size] or null
  int64_t first_sum, end_sum;
  bool reverse;
};

struct ScanArgs {
  Scan scan[kMaxScans];
  int64_t state_size;  // d_k·d_v, a multiple of 256
  Geometry g;
  Slopes slopes;
};

__global__ void __launch_bounds__(kThreads) scan_kernel(const __grid_constant__ ScanArgs args) {
  const Scan sc = args.scan[blockIdx.z];
  const Geometry g = args.g;
  const int64_t bh = blockIdx.y;
  const int64_t quads = args.state_size / 4;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= quads) return;
  const float slope = args.slopes.s[bh % g.heads];
  const float full_decay = expf(-slope * static_cast<float>(g.chunk));
  const float last_decay = expf(-slope * static_cast<float>(g.length - (g.chunks - 1) * g.chunk));
  float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (sc.initial != nullptr) z = reinterpret_cast<const float4*>(sc.initial)[bh * quads + e];
  float4* states = reinterpret_cast<float4*>(sc.states) + bh * g.chunks * quads + e;
  for (int64_t s0 = 0; s0 < g.chunks; s0 += kScanAhead) {
    float4 sum[kScanAhead];
#pragma unroll
    for (int u = 0; u < kScanAhead; ++u) {  // loads first: several in flight
      const int64_t step = s0 + u, c = sc.reverse ? g.chunks - 1 - step : step;
      sum[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (step < g.chunks && c >= sc.first_sum && c < sc.end_sum) sum[u] = states[c * quads];
    }
#pragma unroll
    for (int u = 0; u < kScanAhead; ++u) {
      const int64_t step = s0 + u, c = sc.reverse ? g.chunks - 1 - step : step;
      if (step >= g.chunks) break;
      states[c * quads] = z;
      const float w = c == g.chunks - 1 ? last_decay : full_decay;
      z = make_float4(w * z.x + sum[u].x, w * z.y + sum[u].y, w * z.z + sum[u].z,
                      w * z.w + sum[u].w);
    }
  }
  if (sc.final_state != nullptr) reinterpret_cast<float4*>(sc.final_state)[bh * quads + e] = z;
}

// ---- 3. Chains over sub-blocks ----------------------------------------------------

struct Chain {
  const bf16* a;   // [BH, N, d_a]
  const bf16* b;   // [BH, N, d_a]
  const bf16* c;   // [BH, N, d_c]
  bf16* out;       // [BH, N, d_c]
  const float* z;  // [BH, chunks, d_a, d_c] ([.., d_c, d_a] when z_transposed); null: zero
  int da, dc;
  bool reverse, z_transposed;
};

struct ChainArgs {
  Chain chain[kMaxChains];
  int count;
  Geometry g;
  Slopes slopes;
};

// Byte offsets of chain_kernel's shared arrays for contraction width d_a.
struct ChainShared {
  size_t a, b, c, z, scores, stage, powers, bytes;
  __host__ __device__ explicit ChainShared(int da) {
    const size_t rows_ab = sizeof(bf16) * kSub * static_cast<size_t>(da + kPadH);
    a = 0;                                                          // [kSub][d_a + pad]  A
    b = a + rows_ab;                                                // [kSub][d_a + pad]  B
    c = b + rows_ab;                                                // [kSub][kLdTile]    C
    z = c + sizeof(bf16) * kSub * kLdTile;                          // [d_a][kLdTile]     Z (bf16)
    scores = z + sizeof(bf16) * static_cast<size_t>(da) * kLdTile;  // [kSub][kLdScore]
    stage = scores + sizeof(bf16) * kSub * kLdScore;                // [kSub][kLdStage]   f32
    powers = stage + sizeof(float) * kSub * kLdStage;               // λ^0 … λ^kSub
    bytes = powers + sizeof(float) * (kSub + 4);
  }
};

template <int kMaxDa>
__global__ void __launch_bounds__(kThreads, kMaxDa <= 128 ? 2 : 1)
    chain_kernel(const __grid_constant__ ChainArgs args) {
  constexpr int kFrags = kMaxDa / 32;   // (d_a/16)·(kTile/16) state tiles over kWarps
  constexpr int kVecsAB = kMaxDa / 32;  // a quarter of a row of d_a, in 16-byte vectors
  constexpr int kVecsC = kTile / 32;
  static_assert(kSub == 64 && kTile == 64 && kWarps == 8, "tile ownership below assumes these");
  int which = 0, tile = static_cast<int>(blockIdx.x);
  while (which + 1 < args.count && tile >= tiles_of(args.chain[which].dc)) {
    tile -= tiles_of(args.chain[which].dc);
    ++which;
  }
  const Chain ch = args.chain[which];
  const Geometry g = args.g;
  const int64_t chunk = blockIdx.y, bh = blockIdx.z;
  const float slope = args.slopes.s[bh % g.heads];
  const int da = ch.da, dc = ch.dc, lda = da + kPadH;
  const int col0 = tile * kTile, cols = min(kTile, dc - col0);
  const bool reverse = ch.reverse;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  // Warp w owns, of every 64×64 tile grid, the 16×16 tiles (i0 + 2r, j) with
  // i0 = w / 4, j = w % 4: output and score tiles r = 0, 1; state tiles
  // (d_a/16 rows) r = 0 … kFrags − 1 — tile f = w + 8r in row-major order.
  const int i0 = warp / 4, j = warp % 4;

  extern __shared__ __align__(128) unsigned char shared[];
  const ChainShared layout(da);
  bf16* a_s = reinterpret_cast<bf16*>(shared + layout.a);
  bf16* b_s = reinterpret_cast<bf16*>(shared + layout.b);
  bf16* c_s = reinterpret_cast<bf16*>(shared + layout.c);
  bf16* z_s = reinterpret_cast<bf16*>(shared + layout.z);
  bf16* scores = reinterpret_cast<bf16*>(shared + layout.scores);
  float* stage = reinterpret_cast<float*>(shared + layout.stage);
  float* powers = reinterpret_cast<float*>(shared + layout.powers);
  for (int n = static_cast<int>(threadIdx.x); n <= kSub; n += kThreads)
    powers[n] = expf(-slope * static_cast<float>(n));

  const int64_t begin = chunk * g.chunk;
  const int chunk_len = static_cast<int>(min64(g.chunk, g.length - begin));
  const int subs = (chunk_len + kSub - 1) / kSub;
  const bf16* a_g = ch.a + bh * g.length * da;
  const bf16* b_g = ch.b + bh * g.length * da;
  const bf16* c_g = ch.c + bh * g.length * dc + col0;
  bf16* out_g = ch.out + bh * g.length * dc + col0;

  // The state entering the chunk: f32 in accumulators, bf16 in z_s.
  const int z_tiles = (da / 16) * (kTile / 16);
  FragC state[kFrags];
  const bool has_initial = ch.z != nullptr;
  const float* z_g = has_initial ? ch.z + (bh * g.chunks + chunk) * da * dc : nullptr;
#pragma unroll
  for (int i = 0; i < kFrags; ++i) {
    const int f = warp + kWarps * i, zr = f / 4, zc = f % 4;
    wmma::fill_fragment(state[i], 0.0f);
    if (!has_initial || f >= z_tiles || 16 * zc >= cols) continue;
    if (ch.z_transposed) {
      wmma::load_matrix_sync(state[i], z_g + (col0 + 16 * zc) * da + 16 * zr, da,
                             wmma::mem_col_major);
    } else {
      wmma::load_matrix_sync(state[i], z_g + 16 * zr * dc + col0 + 16 * zc, dc,
                             wmma::mem_row_major);
    }
  }
  if (has_initial) state_to_shared(state, z_tiles, z_s, stage + warp * 256, warp, lane);
  bool have_state = has_initial;

  auto sub_at = [&](int step) { return reverse ? subs - 1 - step : step; };
  Rows<kVecsAB> a_r, b_r;
  Rows<kVecsC> c_r;
  auto fetch = [&](int step) {
    const int64_t t0 = begin + static_cast<int64_t>(sub_at(step)) * kSub;
    const int m = static_cast<int>(min64(kSub, g.length - t0));
    load_rows(a_r, a_g + t0 * da, da, m, da);
    load_rows(b_r, b_g + t0 * da, da, m, da);
    load_rows(c_r, c_g + t0 * dc, dc, m, cols);
  };
  fetch(0);
  for (int step = 0; step < subs; ++step) {
    const int64_t t0 = begin + static_cast<int64_t>(sub_at(step)) * kSub;
    const int m = static_cast<int>(min64(kSub, g.length - t0));
    __syncthreads();  // the previous sub-block is done with every shared array
    store_rows(a_r, a_s, lda, da, 1.0f);
    store_rows(b_r, b_s, lda, da, 1.0f);
    store_rows(c_r, c_s, kLdTile, kTile, 1.0f);
    __syncthreads();
    if (step + 1 < subs) fetch(step + 1);

    // Scores A Bᵀ, f32 into stage, of this warp's tiles (i0, j), (i0 + 2, j)
    // of the 4×4 where they are on the unmasked side of the diagonal.
    {
      const bool need[2] = {reverse ? j >= i0 : j <= i0, reverse ? j >= i0 + 2 : j <= i0 + 2};
      FragC acc[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) wmma::fill_fragment(acc[r], 0.0f);
      if (need[0] || need[1]) {
#pragma unroll 1
        for (int kk = 0; kk < da; kk += 16) {
          FragBt fb;
          wmma::load_matrix_sync(fb, b_s + 16 * j * lda + kk, lda);
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            if (!need[r]) continue;
            FragA fa;
            wmma::load_matrix_sync(fa, a_s + 16 * (i0 + 2 * r) * lda + kk, lda);
            wmma::mma_sync(acc[r], fa, fb, acc[r]);
          }
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if (need[r])
          wmma::store_matrix_sync(stage + 16 * (i0 + 2 * r) * kLdStage + 16 * j, acc[r], kLdStage,
                                  wmma::mem_row_major);
      }
    }
    __syncthreads();
    // The decay mask D (zero past the m valid tokens), bf16 for the next
    // product: thread i, row t = i / 4, columns 16·(i % 4) + x.
    {
      const int t = my_row();
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int s0 = 16 * my_quarter() + 8 * half;
        const float* src = stage + t * kLdStage + s0;
        float x[8];
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const int s = s0 + c;
          const bool keep = t < m && s < m && (reverse ? s >= t : s <= t);
          x[c] = keep ? src[c] * powers[t > s ? t - s : s - t] : 0.0f;
        }
        *reinterpret_cast<uint4*>(scores + t * kLdScore + s0) = pack_bf16x8(x);
      }
    }
    __syncthreads();

    // Output tiles (i0, j), (i0 + 2, j): diag(a_w) A Z (staged to scale its
    // rows), then + (masked scores) C; f32 into stage.
    {
      FragC acc[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) wmma::fill_fragment(acc[r], 0.0f);
      if (have_state) {
#pragma unroll 1
        for (int kk = 0; kk < da; kk += 16) {
          FragB fz;
          wmma::load_matrix_sync(fz, z_s + kk * kLdTile + 16 * j, kLdTile);
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            FragA fa;
            wmma::load_matrix_sync(fa, a_s + 16 * (i0 + 2 * r) * lda + kk, lda);
            wmma::mma_sync(acc[r], fa, fz, acc[r]);
          }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int i = i0 + 2 * r;
          float* tile_f = stage + 16 * i * kLdStage + 16 * j;
          wmma::store_matrix_sync(tile_f, acc[r], kLdStage, wmma::mem_row_major);
          __syncwarp();
          // lane: row lane / 2, columns 8·(lane % 2) + x of the tile
          const int t = 16 * i + lane / 2;
          const float w = t < m ? powers[reverse ? m - 1 - t : t + 1] : 0.0f;
          float* row = tile_f + (lane / 2) * kLdStage + 8 * (lane % 2);
#pragma unroll
          for (int x = 0; x < 8; ++x) row[x] *= w;
          __syncwarp();
          wmma::load_matrix_sync(acc[r], tile_f, kLdStage, wmma::mem_row_major);
        }
      }
      // Score tile (i, ks) is zero above (forward) or below (reverse) the diagonal.
#pragma unroll 1
      for (int ks = 0; ks < 4; ++ks) {
        const bool use[2] = {reverse ? ks >= i0 : ks <= i0, reverse ? ks >= i0 + 2 : ks <= i0 + 2};
        if (!use[0] && !use[1]) continue;
        FragB fc;
        wmma::load_matrix_sync(fc, c_s + 16 * ks * kLdTile + 16 * j, kLdTile);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          if (!use[r]) continue;
          FragA fp;
          wmma::load_matrix_sync(fp, scores + 16 * (i0 + 2 * r) * kLdScore + 16 * ks, kLdScore);
          wmma::mma_sync(acc[r], fp, fc, acc[r]);
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r)
        wmma::store_matrix_sync(stage + 16 * (i0 + 2 * r) * kLdStage + 16 * j, acc[r], kLdStage,
                                wmma::mem_row_major);
    }
    __syncthreads();
    {  // thread i: row i / 4, vectors i % 4 and i % 4 + 4 of the 64 columns
      const int t = my_row(), q = my_quarter();
      if (t < m) {
#pragma unroll
        for (int u = 0; u < kTile / 32; ++u) {
          const int v = q + 4 * u;
          if (v < cols / 8)
            *reinterpret_cast<uint4*>(out_g + (t0 + t) * dc + 8 * v) =
                pack_bf16x8(stage + t * kLdStage + 8 * v);
        }
      }
    }
    if (step + 1 == subs) break;  // the chunk's last sub-block: no later query needs the state

    // Z ← λ^m Z + (diag(u_w) B)ᵀ C: u_w folded into C's rows in place.
    {
      const int s = my_row(), q = my_quarter();
      const float w = s < m ? powers[reverse ? s + 1 : m - 1 - s] : 0.0f;
#pragma unroll
      for (int u = 0; u < kTile / 32; ++u) {
        uint4* p = reinterpret_cast<uint4*>(c_s + s * kLdTile + 8 * (q + 4 * u));
        *p = scale_bf16x8(*p, w);
      }
    }
    __syncthreads();
    const float decay = powers[m];
#pragma unroll
    for (int i = 0; i < kFrags; ++i) {
      for (int x = 0; x < state[i].num_elements; ++x) state[i].x[x] *= decay;
    }
    // A warp's state tiles share their columns (16·j): one C̃ fragment per kk.
#pragma unroll 1
    for (int kk = 0; kk < kSub; kk += 16) {
      FragB cb;
      wmma::load_matrix_sync(cb, c_s + kk * kLdTile + 16 * j, kLdTile);
#pragma unroll
      for (int i = 0; i < kFrags; ++i) {
        if (warp + kWarps * i >= z_tiles) continue;
        FragAt bt;
        wmma::load_matrix_sync(bt, b_s + kk * lda + 16 * (i0 + 2 * i), lda);
        wmma::mma_sync(state[i], bt, cb, state[i]);
      }
    }
    // stage is free: its last readers (the output rows) passed the barrier above.
    state_to_shared(state, z_tiles, z_s, stage + warp * 256, warp, lane);
    have_state = true;
  }
}

// ---- Host side -----------------------------------------------------------------

int multiprocessors() {
  int device = 0, count = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

// Tokens per chunk: long chunks keep the state traffic (a d_k × d_v state per
// chunk, as large as 128 tokens of q, k, v and o together at d = 128) small;
// short ones give the chain launch, whose CTAs walk their chunk serially,
// enough CTAs: at least ~4 per SM, chunks of at most 16 sub-blocks.
// chunk_tokens > 0 overrides the choice (tests, tuning).
Geometry plan(const AttentionDims& d, int chain_tiles, int64_t chunk_tokens) {
  auto chunks_of = [&](int64_t subs) { return (d.length + kSub * subs - 1) / (kSub * subs); };
  int64_t subs = 16;
  if (chunk_tokens > 0) {
    subs = chunk_tokens / kSub > 1 ? chunk_tokens / kSub : 1;
  } else {
    static const int sms = multiprocessors();
    const int64_t target = 4 * static_cast<int64_t>(sms);
    while (subs > 1 && d.batch * d.heads * chunks_of(subs) * chain_tiles < target) subs /= 2;
  }
  while (chunks_of(subs) > 65535) subs *= 2;  // grid.y
  return {d.length, kSub * subs, chunks_of(subs), d.heads};
}

int forward_tiles(const AttentionDims& d) { return tiles_of(static_cast<int>(d.dv)); }
int backward_tiles(const AttentionDims& d) {
  return 2 * tiles_of(static_cast<int>(d.dk)) + tiles_of(static_cast<int>(d.dv));
}

Slopes slopes_of(const AttentionDims& d, const double* slopes) {
  Slopes s{};
  for (int64_t h = 0; h < d.heads; ++h) s.s[h] = static_cast<float>(slopes[h]);
  return s;
}

void launch_sums(const SumArgs& args, int64_t batch_heads) {
  int tiles = 0, max_db = 0;
  int64_t chunks = 0;
  for (int i = 0; i < args.count; ++i) {
    tiles += tiles_of(args.sum[i].dc);
    max_db = args.sum[i].db > max_db ? args.sum[i].db : max_db;
    chunks = args.sum[i].chunk_count > chunks ? args.sum[i].chunk_count : chunks;
  }
  if (args.count == 0 || chunks == 0) return;
  const size_t bytes = sum_shared_bytes(max_db);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks),
                  static_cast<unsigned>(batch_heads));
  if (max_db <= 128) {
    CUDA_CHECK(cudaFuncSetAttribute(chunk_sum_kernel<128>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
    chunk_sum_kernel<128><<<grid, kThreads, bytes, cudaStreamLegacy>>>(args);
  } else {
    CUDA_CHECK(cudaFuncSetAttribute(chunk_sum_kernel<256>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
    chunk_sum_kernel<256><<<grid, kThreads, bytes, cudaStreamLegacy>>>(args);
  }
  CUDA_CHECK(cudaGetLastError());
}

void launch_scans(const ScanArgs& args, int count, int64_t batch_heads) {
  if (count == 0) return;
  const int64_t quads = args.state_size / 4;
  const dim3 grid(static_cast<unsigned>((quads + kThreads - 1) / kThreads),
                  static_cast<unsigned>(batch_heads), static_cast<unsigned>(count));
  scan_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(args);
  CUDA_CHECK(cudaGetLastError());
}

void launch_chains(const ChainArgs& args, int64_t batch_heads) {
  int tiles = 0, max_da = 0;
  for (int i = 0; i < args.count; ++i) {
    tiles += tiles_of(args.chain[i].dc);
    max_da = args.chain[i].da > max_da ? args.chain[i].da : max_da;
  }
  const size_t bytes = ChainShared(max_da).bytes;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(args.g.chunks),
                  static_cast<unsigned>(batch_heads));
  if (max_da <= 128) {
    CUDA_CHECK(cudaFuncSetAttribute(chain_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
    chain_kernel<128><<<grid, kThreads, bytes, cudaStreamLegacy>>>(args);
  } else {
    CUDA_CHECK(cudaFuncSetAttribute(chain_kernel<256>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
    chain_kernel<256><<<grid, kThreads, bytes, cudaStreamLegacy>>>(args);
  }
  CUDA_CHECK(cudaGetLastError());
}

const bf16* in(const void* p) { return static_cast<const bf16*>(p); }
bf16* out(void* p) { return static_cast<bf16*>(p); }

}  // namespace

bool supports(const AttentionDims& d) {
  auto head_dim = [](int64_t x) { return x >= 16 && x <= 256 && x % 16 == 0; };
  return d.length >= 1 && head_dim(d.dk) && head_dim(d.dv) && d.heads <= kMaxAttentionHeads &&
         d.batch * d.heads >= 1 && d.batch * d.heads <= 65535;
}

size_t workspace_bytes(const AttentionDims& d, bool backward, int64_t chunk_tokens) {
  const Geometry g = plan(d, backward ? backward_tiles(d) : forward_tiles(d), chunk_tokens);
  const size_t states = static_cast<size_t>(d.batch * d.heads * g.chunks * d.dk * d.dv);
  return (backward ? 2 : 1) * states * sizeof(float);
}

void forward(const AttentionDims& d, const double* slopes, const void* q, const void* k,
             const void* v, const float* kv_in, void* o, float* kv_out, void* workspace,
             int64_t chunk_tokens) {
  const Geometry g = plan(d, forward_tiles(d), chunk_tokens);
  const Slopes s = slopes_of(d, slopes);
  const int64_t bh = d.batch * d.heads;
  const int dk = static_cast<int>(d.dk), dv = static_cast<int>(d.dv);
  float* states = static_cast<float*>(workspace);
  // Chunks whose sum the state needs: all but the last, unless KV_out is asked.
  const int64_t summed = kv_out != nullptr ? g.chunks : g.chunks - 1;
  const bool need_states = g.chunks > 1 || kv_in != nullptr || kv_out != nullptr;

  SumArgs sums{};
  sums.g = g;
  sums.slopes = s;
  if (summed > 0) sums.sum[sums.count++] = {in(k), in(v), states, dk, dv, false, 0, summed};
  launch_sums(sums, bh);

  ScanArgs scans{};
  scans.state_size = d.dk * d.dv;
  scans.g = g;
  scans.slopes = s;
  scans.scan[0] = {states, kv_in, kv_out, 0, summed, false};
  launch_scans(scans, need_states ? 1 : 0, bh);

  ChainArgs chains{};
  chains.g = g;
  chains.slopes = s;
  chains.chain[chains.count++] = {in(q), in(k), in(v), out(o), need_states ? states : nullptr,
                                  dk,    dv,    false, false};
  launch_chains(chains, bh);
}

void backward(const AttentionDims& d, const double* slopes, const void* q, const void* k,
              const void* v, const float* kv_in, const void* d_o, const float* d_kv_out, void* dq,
              void* dk, void* dv, float* d_kv_in, void* workspace, int64_t chunk_tokens) {
  const Geometry g = plan(d, backward_tiles(d), chunk_tokens);
  const Slopes s = slopes_of(d, slopes);
  const int64_t bh = d.batch * d.heads;
  const int dkh = static_cast<int>(d.dk), dvh = static_cast<int>(d.dv);
  float* kv_states = static_cast<float*>(workspace);             // S entering each chunk
  float* grad_states = kv_states + bh * g.chunks * d.dk * d.dv;  // G leaving each chunk
  // S: the sums of chunks [0, chunks − 1) (the last one's feeds no query).
  const int64_t kv_summed = g.chunks - 1;
  const bool need_kv = g.chunks > 1 || kv_in != nullptr;
  // G_{c−1} = λ^{L_c} G_c + (Λ Q_c)ᵀ dO_c: the sums of chunks [1, chunks), and
  // chunk 0's too when dKV_in = G_{−1} is asked.
  const int64_t grad_first = d_kv_in != nullptr ? 0 : 1;
  const int64_t grad_summed = g.chunks - grad_first;
  const bool need_grad = g.chunks > 1 || d_kv_out != nullptr || d_kv_in != nullptr;

  SumArgs sums{};
  sums.g = g;
  sums.slopes = s;
  if (kv_summed > 0)
    sums.sum[sums.count++] = {in(k), in(v), kv_states, dkh, dvh, false, 0, kv_summed};
  if (grad_summed > 0)
    sums.sum[sums.count++] = {in(q), in(d_o), grad_states, dkh, dvh, true, grad_first, grad_summed};
  launch_sums(sums, bh);

  ScanArgs scans{};
  scans.state_size = d.dk * d.dv;
  scans.g = g;
  scans.slopes = s;
  int scan_count = 0;
  if (need_kv) scans.scan[scan_count++] = {kv_states, kv_in, nullptr, 0, kv_summed, false};
  if (need_grad)
    scans.scan[scan_count++] = {grad_states, d_kv_out, d_kv_in, grad_first, g.chunks, true};
  launch_scans(scans, scan_count, bh);

  ChainArgs chains{};
  chains.g = g;
  chains.slopes = s;
  const float* kv = need_kv ? kv_states : nullptr;
  const float* grad = need_grad ? grad_states : nullptr;
  chains.chain[chains.count++] = {in(d_o), in(v), in(k), out(dq), kv, dvh, dkh, false, true};
  chains.chain[chains.count++] = {in(k), in(q), in(d_o), out(dv), grad, dkh, dvh, true, false};
  chains.chain[chains.count++] = {in(v), in(d_o), in(q), out(dk), grad, dvh, dkh, true, true};
  launch_chains(chains, bh);
}

}  // namespace linpar::cuda::lightning_fast
