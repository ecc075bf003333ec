// Building blocks shared by the lightning-attention forward and backward CPU
// kernels (internal to core/ops): decay tables and the masked block product.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/op_stats.h"
#include "core/ops/gemm.h"

namespace linpar::lightning {

// Decay factors for one head. Powers are exp(−n·s), never repeated products
// (TransNormerLLM's robust-inference section: products drift over long spans).
template <typename T>
struct DecayTables {
  int64_t block;
  double slope;
  std::vector<T> mask;     // [b, b]: λ^{i−j} for i ≥ j, else 0
  std::vector<T> q_decay;  // [b]: λ^{i+1} (a query's distance to the state before its block)

  DecayTables(double s, int64_t b)
      : block(b),
        slope(s),
        mask(static_cast<size_t>(b * b), T(0)),
        q_decay(static_cast<size_t>(b)) {
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j <= i; ++j)
        mask[static_cast<size_t>(i * b + j)] =
            static_cast<T>(std::exp(-s * static_cast<double>(i - j)));
      q_decay[static_cast<size_t>(i)] = static_cast<T>(std::exp(-s * static_cast<double>(i + 1)));
    }
  }
  // λ^{m−1−j}, j < m: a key's distance to the end of its block of length m.
  void k_decay(int64_t m, std::vector<T>& out) const {
    out.resize(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j)
      out[static_cast<size_t>(j)] =
          static_cast<T>(std::exp(-slope * static_cast<double>(m - 1 - j)));
  }
  T power(int64_t n) const { return static_cast<T>(std::exp(-slope * static_cast<double>(n))); }
};

inline int64_t masked_product_flops(int64_t m, int64_t d) {
  return 2 * m * m * d + m * (m + 1) / 2;
}

// s[m, m] = (a[m, d] · b[m, d]ᵀ) ⊙ M (causal decay mask of the block).
template <typename T>
void masked_product(const T* a, const T* b, int64_t m, int64_t d, const DecayTables<T>& decay,
                    T* s) {
  gemm<T>(false, true, m, m, d, T(1), a, d, b, d, T(0), s, m);
  for (int64_t i = 0; i < m; ++i) {
    const T* mask_row = decay.mask.data() + i * decay.block;
    for (int64_t j = 0; j <= i; ++j) s[i * m + j] *= mask_row[j];
    for (int64_t j = i + 1; j < m; ++j) s[i * m + j] = T(0);
  }
  count_flops(m * (m + 1) / 2);
}

// out[i, :] = scale[i] · in[i, :] for an [m, d] matrix.
template <typename T>
void scale_rows(const T* in, const T* scale, int64_t m, int64_t d, T* out) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < d; ++c) out[i * d + c] = scale[i] * in[i * d + c];
  }
  count_flops(m * d);
}

// acc[i, :] += scale[i] · in[i, :] for an [m, d] matrix.
template <typename T>
void add_scaled_rows(const T* in, const T* scale, int64_t m, int64_t d, T* acc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < d; ++c) acc[i * d + c] += scale[i] * in[i * d + c];
  }
  count_flops(2 * m * d);
}

// x *= alpha for n elements.
template <typename T>
void scale_in_place(T* x, T alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
  count_flops(n);
}

// The shapes shared by forward and backward, checked once.
struct Dims {
  int64_t batch, heads, length, dk, dv;
};
Dims check_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                const std::vector<double>& slopes, int64_t block_size, const Tensor& kv_in);

}  // namespace linpar::lightning
