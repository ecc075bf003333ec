#include "core/cuda/cuda_check.h"
#include "core/cuda/cuda_runtime.h"

namespace linpar::cuda {

namespace {

// Plain cudaMalloc/cudaFree for now; the caching allocator of the GPU issue
// replaces this class behind the same interface.
class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* ptr = nullptr;
    CUDA_CHECK(cudaMalloc(&ptr, bytes));
    return ptr;
  }
  void deallocate(void* ptr, size_t) override { cudaFree(ptr); }  // no throw from a destructor
  Device device() const override { return Device::CUDA; }
};

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (dst == Device::CUDA && src == Device::CUDA) return cudaMemcpyDeviceToDevice;
  if (dst == Device::CUDA) return cudaMemcpyHostToDevice;
  if (src == Device::CUDA) return cudaMemcpyDeviceToHost;
  return cudaMemcpyHostToHost;
}

}  // namespace

bool built_with_cuda() { return true; }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

bool available() { return device_count() > 0; }

Allocator& device_allocator() {
  if (!available()) throw UserError("--device cuda: no CUDA device is present on this machine");
  static CudaAllocator allocator;
  return allocator;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, copy_kind(dst_device, src_device)));
}

void memset_zero(void* ptr, size_t bytes) { CUDA_CHECK(cudaMemset(ptr, 0, bytes)); }

void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace linpar::cuda
