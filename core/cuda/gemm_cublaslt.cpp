// Host code (cuBLASLt is a host API): compiled only when CUDA is present.
#ifdef LINPAR_HAVE_CUDA

#include "core/cuda/gemm_cublaslt.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <compare>
#include <map>
#include <string>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "core/op_stats.h"

#define CUBLASLT_CHECK(call)                                                                  \
  do {                                                                                        \
    cublasStatus_t linpar_cublas_status_ = (call);                                            \
    if (linpar_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                     \
      ::linpar::internal_error(__FILE__, __LINE__,                                            \
                               std::string(#call ": ") + cublasLtGetStatusString(linpar_cublas_status_)); \
    }                                                                                         \
  } while (0)

namespace linpar::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct AlgoKey {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  DType dtype, c_dtype;
  auto operator<=>(const AlgoKey&) const = default;
};

// One handle and workspace for the process's device (created on first use),
// and the algorithm chosen for each shape so far.
struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<AlgoKey, cublasLtMatmulAlgo_t> algos;
  LtContext() {
    CUBLASLT_CHECK(cublasLtCreate(&handle));
    CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  }
  ~LtContext() {
    cudaFree(workspace);
    cublasLtDestroy(handle);
  }
};

LtContext& context() {
  static LtContext ctx;
  return ctx;
}

// RAII for the descriptors of one call.
struct Layout {
  cublasLtMatrixLayout_t desc = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&desc, type, static_cast<uint64_t>(rows),
                                              static_cast<uint64_t>(cols), ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(desc); }
};

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
          int64_t lda, const void* b, int64_t ldb, float beta, void* c, int64_t ldc, DType dtype,
          DType c_dtype) {
  LINPAR_CHECK((dtype == DType::F32 || dtype == DType::BF16) &&
                   (c_dtype == dtype || (dtype == DType::BF16 && c_dtype == DType::F32)),
               "cuda gemm: operands {}, output {}", dtype_name(dtype), dtype_name(c_dtype));
  if (m == 0 || n == 0) return;
  const cudaDataType_t type = dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
  const cudaDataType_t c_type = c_dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the column-
  // major product of B's storage (first operand) and A's (second), m and n
  // swapped; a stored matrix's transpose flag carries over unchanged.
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const Layout first(type, trans_b ? k : n, trans_b ? n : k, ldb);
  const Layout second(type, trans_a ? m : k, trans_a ? k : m, lda);
  const Layout out(c_type, n, m, ldc);
  cublasLtMatmulDesc_t desc = nullptr;
  CUBLASLT_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  LtContext& ctx = context();
  // The heuristic query costs tens of microseconds, and a training step asks
  // for the same few shapes hundreds of times: keep its answer per shape.
  const AlgoKey key{trans_a, trans_b, m, n, k, lda, ldb, ldc, dtype, c_dtype};
  auto cached = ctx.algos.find(key);
  if (cached == ctx.algos.end()) {
    cublasLtMatmulPreference_t preference = nullptr;
    CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspaceBytes, sizeof(kWorkspaceBytes)));
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    CUBLASLT_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc, first.desc, second.desc, out.desc,
                                                  out.desc, preference, 1, &heuristic, &found));
    cublasLtMatmulPreferenceDestroy(preference);
    LINPAR_CHECK(found > 0, "cuda gemm: no cuBLASLt algorithm for {}x{}x{} {}", m, n, k, dtype_name(dtype));
    cached = ctx.algos.emplace(key, heuristic.algo).first;
  }
  CUBLASLT_CHECK(cublasLtMatmul(ctx.handle, desc, &alpha, b, first.desc, a, second.desc, &beta, c,
                                out.desc, c, out.desc, &cached->second, ctx.workspace,
                                kWorkspaceBytes, cudaStreamLegacy));
  cublasLtMatmulDescDestroy(desc);
  count_flops(2 * m * n * k);
}

}  // namespace linpar::cuda

#endif  // LINPAR_HAVE_CUDA
