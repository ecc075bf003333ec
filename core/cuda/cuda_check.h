// CUDA_CHECK / CUBLAS_CHECK: wrap every CUDA runtime and cuBLAS call; on failure
// throw InternalError naming file, line, the call and the library's message.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error_types.h"

#define CUDA_CHECK(call)                                                                           \
  do {                                                                                             \
    cudaError_t linpar_cuda_status_ = (call);                                                      \
    if (linpar_cuda_status_ != cudaSuccess) {                                                      \
      ::linpar::internal_error(__FILE__, __LINE__,                                                 \
                               std::string(#call ": ") + cudaGetErrorString(linpar_cuda_status_)); \
    }                                                                                              \
  } while (0)
