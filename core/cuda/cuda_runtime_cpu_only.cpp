// Host-only build: the CUDA entry points exist so that callers need no #ifdefs,
// and each says plainly that this binary has no CUDA backend.
#ifndef LINPAR_HAVE_CUDA

#include "core/cuda/cuda_runtime.h"
#include "core/error.h"

namespace linpar::cuda {

namespace {
[[noreturn]] void no_cuda() {
  user_error(
      "--device cuda: this linpar was built without CUDA (no nvcc was found at configure time)");
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
bool available() { return false; }
Allocator& device_allocator() { no_cuda(); }
void copy_bytes(void*, Device, const void*, Device, size_t) { no_cuda(); }
void memset_zero(void*, size_t) { no_cuda(); }
void synchronize() {}
MemoryStats memory_stats() { return {}; }
void reset_peak_memory() {}
void release_cached_memory() {}

}  // namespace linpar::cuda

#endif  // LINPAR_HAVE_CUDA
