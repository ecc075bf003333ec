// Lightning attention on the GPU, CUDA-core kernels (f32 arithmetic): the
// fallback for what the tensor-core path (lightning_attention_fast.cu) does
// not take, and the launchers that choose. Forward: one CTA per (batch, head, tile of
// 32 value columns) walks the sequence in blocks of kBlock tokens, keeping its
// d_k × 32 slice of the KV state in shared memory (f32):
//   O_block  = ((Q Kᵀ) ⊙ M) V  +  Λ Q KV          (masked intra-block, inter-block)
//   KV      ←  λ^m KV + (diag(λ^{m−1−j}) K)ᵀ V
// The first correct version: CUDA-core f32 arithmetic, the intra-block scores
// recomputed by each value tile.
#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "core/cuda/lightning_attention_fast.h"
#include "core/cuda/lightning_attention_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kBlock = 16;     // tokens per block
constexpr int kTile = 32;      // value columns per CTA
constexpr int kThreads = 256;

struct Slopes {
  float s[kMaxAttentionHeads];
};

__device__ inline float load(const float* p, int64_t i) { return p[i]; }
__device__ inline float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ inline void store(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16(x); }

template <typename T>
__global__ void forward_kernel(AttentionDims d, Slopes slopes, const T* q, const T* k, const T* v,
                               const float* kv_in, T* o, float* kv_out) {
  extern __shared__ float shared[];
  const int dk = static_cast<int>(d.dk), dv = static_cast<int>(d.dv);
  const int64_t head = blockIdx.x;  // b·H + h
  const int h = static_cast<int>(head % d.heads);
  const int col0 = blockIdx.y * kTile;
  const int cols = min(kTile, dv - col0);
  float* kv = shared;                    // [dk][kTile]
  float* qs = kv + dk * kTile;           // [kBlock][dk]
  float* ks = qs + kBlock * dk;          // [kBlock][dk]
  float* vs = ks + kBlock * dk;          // [kBlock][kTile]
  float* scores = vs + kBlock * kTile;   // [kBlock][kBlock]
  const float slope = slopes.s[h];
  const int64_t qk_base = head * d.length * dk, v_base = head * d.length * dv;
  const int64_t state_base = head * static_cast<int64_t>(dk) * dv;

  bool have_state = kv_in != nullptr;
  for (int i = threadIdx.x; i < dk * kTile; i += blockDim.x) {
    const int a = i / kTile, j = i % kTile;
    kv[i] = (have_state && j < cols) ? kv_in[state_base + a * dv + col0 + j] : 0.0f;
  }
  for (int64_t t0 = 0; t0 < d.length; t0 += kBlock) {
    const int m = static_cast<int>(min(static_cast<int64_t>(kBlock), d.length - t0));
    __syncthreads();
    for (int i = threadIdx.x; i < m * dk; i += blockDim.x) {
      qs[i] = load(q, qk_base + t0 * dk + i);
      ks[i] = load(k, qk_base + t0 * dk + i);
    }
    for (int i = threadIdx.x; i < m * kTile; i += blockDim.x) {
      const int r = i / kTile, j = i % kTile;
      vs[i] = j < cols ? load(v, v_base + (t0 + r) * dv + col0 + j) : 0.0f;
    }
    __syncthreads();
    // Masked scores: λ^{r−c} q_r·k_c for c ≤ r.
    for (int i = threadIdx.x; i < m * m; i += blockDim.x) {
      const int r = i / m, c = i % m;
      float s = 0.0f;
      if (c <= r) {
        for (int a = 0; a < dk; ++a) s += qs[r * dk + a] * ks[c * dk + a];
        s *= __expf(-slope * static_cast<float>(r - c));
      }
      scores[r * kBlock + c] = s;
    }
    __syncthreads();
    // Output rows: intra-block plus λ^{r+1} q_r·KV (the state before the block).
    for (int i = threadIdx.x; i < m * cols; i += blockDim.x) {
      const int r = i / cols, j = i % cols;
      float acc = 0.0f;
      for (int c = 0; c <= r; ++c) acc += scores[r * kBlock + c] * vs[c * kTile + j];
      if (have_state) {
        float inter = 0.0f;
        for (int a = 0; a < dk; ++a) inter += qs[r * dk + a] * kv[a * kTile + j];
        acc += __expf(-slope * static_cast<float>(r + 1)) * inter;
      }
      store(o, v_base + (t0 + r) * dv + col0 + j, acc);
    }
    __syncthreads();
    // State update (needed for later blocks or kv_out).
    const float block_decay = __expf(-slope * static_cast<float>(m));
    for (int i = threadIdx.x; i < dk * cols; i += blockDim.x) {
      const int a = i / cols, j = i % cols;
      float add = 0.0f;
      for (int c = 0; c < m; ++c) add += __expf(-slope * static_cast<float>(m - 1 - c)) * ks[c * dk + a] * vs[c * kTile + j];
      kv[a * kTile + j] = (have_state ? block_decay * kv[a * kTile + j] : 0.0f) + add;
    }
    have_state = true;
  }
  __syncthreads();
  if (kv_out != nullptr) {
    for (int i = threadIdx.x; i < dk * cols; i += blockDim.x) {
      const int a = i / cols, j = i % cols;
      kv_out[state_base + a * dv + col0 + j] = have_state ? kv[a * kTile + j] : 0.0f;
    }
  }
}

template <typename T>
void launch(const AttentionDims& d, const double* slopes, const void* q, const void* k, const void* v,
            const float* kv_in, void* o, float* kv_out) {
  Slopes s{};
  for (int64_t h = 0; h < d.heads; ++h) s.s[h] = static_cast<float>(slopes[h]);
  const size_t shared = sizeof(float) * static_cast<size_t>(d.dk * kTile + 2 * kBlock * d.dk +
                                                            kBlock * kTile + kBlock * kBlock);
  CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(d.batch * d.heads), static_cast<unsigned>((d.dv + kTile - 1) / kTile));
  forward_kernel<T><<<grid, kThreads, shared, cudaStreamLegacy>>>(
      d, s, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), kv_in,
      static_cast<T*>(o), kv_out);
  CUDA_CHECK(cudaGetLastError());
}

// Backward for one (batch, head): kBlock-token blocks, state (or its
// gradient) [dk][dv] in shared memory. With S = (Q Kᵀ) ⊙ M, dS = (dO Vᵀ) ⊙ M,
// w_c = λ^{m−1−c}, Λ_r = λ^{r+1} and KV / G the state before / the state
// gradient after the block:
//   dQ = dS K + Λ dO KVᵀ                     (pass 1, forward over blocks)
//   dV = Sᵀ dO + diag(w) K G,  dK = dSᵀ Q + diag(w) V Gᵀ,
//   G ← λ^m G + (Λ Q)ᵀ dO                     (pass 2, backward over blocks)
template <typename T>
__global__ void backward_kernel(AttentionDims d, Slopes slopes, const T* q, const T* k, const T* v,
                                const float* kv_in, const T* d_o, const float* d_kv_out, T* dq,
                                T* dk_out, T* dv_out, float* d_kv_in) {
  extern __shared__ float shared[];
  const int dk = static_cast<int>(d.dk), dv = static_cast<int>(d.dv);
  const int64_t head = blockIdx.x;
  const int h = static_cast<int>(head % d.heads);
  float* state = shared;                  // [dk][dv]: KV (pass 1), G (pass 2)
  float* qs = state + dk * dv;            // [kBlock][dk]
  float* ks = qs + kBlock * dk;           // [kBlock][dk]
  float* vs = ks + kBlock * dk;           // [kBlock][dv]
  float* dos = vs + kBlock * dv;          // [kBlock][dv]
  float* s = dos + kBlock * dv;           // [kBlock][kBlock]: S
  float* ds = s + kBlock * kBlock;        // [kBlock][kBlock]: dS
  const float slope = slopes.s[h];
  const int64_t qk_base = head * d.length * dk, v_base = head * d.length * dv;
  const int64_t state_base = head * static_cast<int64_t>(dk) * dv;
  const int64_t blocks = (d.length + kBlock - 1) / kBlock;

  auto load_block = [&](int64_t t0, int m) {
    for (int i = threadIdx.x; i < m * dk; i += blockDim.x) {
      qs[i] = load(q, qk_base + t0 * dk + i);
      ks[i] = load(k, qk_base + t0 * dk + i);
    }
    for (int i = threadIdx.x; i < m * dv; i += blockDim.x) {
      vs[i] = load(v, v_base + t0 * dv + i);
      dos[i] = load(d_o, v_base + t0 * dv + i);
    }
  };
  // dS (and S when wanted) of the block in shared memory.
  auto scores = [&](int m, bool with_s) {
    for (int i = threadIdx.x; i < m * m; i += blockDim.x) {
      const int r = i / m, c = i % m;
      float a = 0.0f, b = 0.0f;
      if (c <= r) {
        const float decay = __expf(-slope * static_cast<float>(r - c));
        for (int j = 0; j < dv; ++j) a += dos[r * dv + j] * vs[c * dv + j];
        a *= decay;
        if (with_s) {
          for (int x = 0; x < dk; ++x) b += qs[r * dk + x] * ks[c * dk + x];
          b *= decay;
        }
      }
      ds[r * kBlock + c] = a;
      s[r * kBlock + c] = b;
    }
  };

  // Pass 1: dQ, the state KV walking forward.
  bool have_state = kv_in != nullptr;
  for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) state[i] = have_state ? kv_in[state_base + i] : 0.0f;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t t0 = blk * kBlock;
    const int m = static_cast<int>(min(static_cast<int64_t>(kBlock), d.length - t0));
    __syncthreads();
    load_block(t0, m);
    __syncthreads();
    scores(m, false);
    __syncthreads();
    for (int i = threadIdx.x; i < m * dk; i += blockDim.x) {
      const int r = i / dk, x = i % dk;
      float acc = 0.0f;
      for (int c = 0; c <= r; ++c) acc += ds[r * kBlock + c] * ks[c * dk + x];
      if (have_state) {
        float inter = 0.0f;
        for (int j = 0; j < dv; ++j) inter += dos[r * dv + j] * state[x * dv + j];
        acc += __expf(-slope * static_cast<float>(r + 1)) * inter;
      }
      store(dq, qk_base + (t0 + r) * dk + x, acc);
    }
    __syncthreads();
    const float block_decay = __expf(-slope * static_cast<float>(m));
    for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) {
      const int x = i / dv, j = i % dv;
      float add = 0.0f;
      for (int c = 0; c < m; ++c) add += __expf(-slope * static_cast<float>(m - 1 - c)) * ks[c * dk + x] * vs[c * dv + j];
      state[i] = (have_state ? block_decay * state[i] : 0.0f) + add;
    }
    have_state = true;
  }

  // Pass 2: dK, dV, the state gradient G walking backward.
  __syncthreads();
  for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) state[i] = d_kv_out != nullptr ? d_kv_out[state_base + i] : 0.0f;
  for (int64_t blk = blocks - 1; blk >= 0; --blk) {
    const int64_t t0 = blk * kBlock;
    const int m = static_cast<int>(min(static_cast<int64_t>(kBlock), d.length - t0));
    __syncthreads();
    load_block(t0, m);
    __syncthreads();
    scores(m, true);
    __syncthreads();
    for (int i = threadIdx.x; i < m * dv; i += blockDim.x) {  // dV
      const int c = i / dv, j = i % dv;
      float acc = 0.0f;
      for (int r = c; r < m; ++r) acc += s[r * kBlock + c] * dos[r * dv + j];
      float inter = 0.0f;
      for (int x = 0; x < dk; ++x) inter += ks[c * dk + x] * state[x * dv + j];
      acc += __expf(-slope * static_cast<float>(m - 1 - c)) * inter;
      store(dv_out, v_base + (t0 + c) * dv + j, acc);
    }
    for (int i = threadIdx.x; i < m * dk; i += blockDim.x) {  // dK
      const int c = i / dk, x = i % dk;
      float acc = 0.0f;
      for (int r = c; r < m; ++r) acc += ds[r * kBlock + c] * qs[r * dk + x];
      float inter = 0.0f;
      for (int j = 0; j < dv; ++j) inter += vs[c * dv + j] * state[x * dv + j];
      acc += __expf(-slope * static_cast<float>(m - 1 - c)) * inter;
      store(dk_out, qk_base + (t0 + c) * dk + x, acc);
    }
    __syncthreads();
    const float block_decay = __expf(-slope * static_cast<float>(m));
    for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) {  // G ← λ^m G + (Λ Q)ᵀ dO
      const int x = i / dv, j = i % dv;
      float add = 0.0f;
      for (int r = 0; r < m; ++r) add += __expf(-slope * static_cast<float>(r + 1)) * qs[r * dk + x] * dos[r * dv + j];
      state[i] = block_decay * state[i] + add;
    }
  }
  __syncthreads();
  if (d_kv_in != nullptr) {
    for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) d_kv_in[state_base + i] = state[i];
  }
}

template <typename T>
void launch_backward(const AttentionDims& d, const double* slopes, const void* q, const void* k,
                     const void* v, const float* kv_in, const void* d_o, const float* d_kv_out,
                     void* dq, void* dk, void* dv, float* d_kv_in) {
  Slopes s{};
  for (int64_t h = 0; h < d.heads; ++h) s.s[h] = static_cast<float>(slopes[h]);
  const size_t shared = sizeof(float) * static_cast<size_t>(d.dk * d.dv + 2 * kBlock * d.dk +
                                                            2 * kBlock * d.dv + 2 * kBlock * kBlock);
  CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(shared)));
  backward_kernel<T><<<static_cast<unsigned>(d.batch * d.heads), 512, shared, cudaStreamLegacy>>>(
      d, s, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), kv_in,
      static_cast<const T*>(d_o), d_kv_out, static_cast<T*>(dq), static_cast<T*>(dk),
      static_cast<T*>(dv), d_kv_in);
  CUDA_CHECK(cudaGetLastError());
}

// The tensor-core path takes bf16 operands of the dims it supports, with its
// workspace, and 16-byte-aligned pointers (its loads are 16-byte vectors).
bool fast_path(const AttentionDims& d, bool bf16, const void* workspace,
               std::initializer_list<const void*> pointers) {
  if (!bf16 || workspace == nullptr || !lightning_fast::supports(d)) return false;
  for (const void* p : pointers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;  // null passes
  }
  return true;
}

}  // namespace

size_t lightning_forward_workspace_bytes(const AttentionDims& d, bool bf16,
                                         int64_t chunk_tokens) {
  return bf16 && lightning_fast::supports(d)
             ? lightning_fast::workspace_bytes(d, false, chunk_tokens)
             : 0;
}

size_t lightning_backward_workspace_bytes(const AttentionDims& d, bool bf16,
                                          int64_t chunk_tokens) {
  return bf16 && lightning_fast::supports(d) ? lightning_fast::workspace_bytes(d, true, chunk_tokens)
                                             : 0;
}

void lightning_backward(const AttentionDims& d, const double* slopes, bool bf16, const void* q,
                        const void* k, const void* v, const float* kv_in, const void* d_o,
                        const float* d_kv_out, void* dq, void* dk, void* dv, float* d_kv_in,
                        void* workspace, int64_t chunk_tokens) {
  if (d.batch * d.heads == 0) return;
  if (fast_path(d, bf16, workspace, {q, k, v, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in})) {
    lightning_fast::backward(d, slopes, q, k, v, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in,
                             workspace, chunk_tokens);
  } else if (bf16) {
    launch_backward<__nv_bfloat16>(d, slopes, q, k, v, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in);
  } else {
    launch_backward<float>(d, slopes, q, k, v, kv_in, d_o, d_kv_out, dq, dk, dv, d_kv_in);
  }
}

void lightning_forward(const AttentionDims& d, const double* slopes, bool bf16, const void* q,
                       const void* k, const void* v, const float* kv_in, void* o, float* kv_out,
                       void* workspace, int64_t chunk_tokens) {
  if (d.batch * d.heads == 0 || d.dv == 0) return;
  if (fast_path(d, bf16, workspace, {q, k, v, kv_in, o, kv_out})) {
    lightning_fast::forward(d, slopes, q, k, v, kv_in, o, kv_out, workspace, chunk_tokens);
  } else if (bf16) {
    launch<__nv_bfloat16>(d, slopes, q, k, v, kv_in, o, kv_out);
  } else {
    launch<float>(d, slopes, q, k, v, kv_in, o, kv_out);
  }
}

}  // namespace linpar::cuda
