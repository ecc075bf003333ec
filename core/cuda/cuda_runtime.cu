#include "core/cuda/cuda_check.h"
#include "core/cuda/cuda_runtime.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace linpar::cuda {

namespace {

// A caching allocator, as PyTorch's and llm.c's training loops rely on:
// cudaFree synchronises the device and cudaMalloc costs tens of microseconds,
// while a training step frees and reallocates the same activation sizes every
// micro-batch. Freed blocks go to a free list keyed by their rounded size and
// are handed out again for that size. Every kernel runs on the legacy default
// stream, so a block freed on the host may be reused at once: later work on
// that stream runs after the work that used it. When cudaMalloc fails, the
// cache is released to the driver and the allocation retried once.
class CachingAllocator final : public Allocator {
 public:
  static size_t rounded(size_t bytes) {
    constexpr size_t kSmall = 512, kLarge = size_t{2} << 20;
    return bytes < (size_t{1} << 20) ? (bytes + kSmall - 1) / kSmall * kSmall
                                     : (bytes + kLarge - 1) / kLarge * kLarge;
  }

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    void* ptr = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
    } else {
      cudaError_t status = cudaMalloc(&ptr, size);
      if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        release_cache_locked();
        status = cudaMalloc(&ptr, size);
      }
      if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        throw UserError(fmt_oom(size, free_bytes, total_bytes));
      }
      CUDA_CHECK(status);
      stats_.reserved_bytes += size;
    }
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    return ptr;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    const size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    free_[size].push_back(ptr);
    stats_.in_use_bytes -= size;
    stats_.cached_bytes += size;
  }

  Device device() const override { return Device::CUDA; }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }
  void release_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache_locked();
  }

 private:
  void release_cache_locked() {
    cudaDeviceSynchronize();
    for (auto& [size, blocks] : free_) {
      for (void* ptr : blocks) cudaFree(ptr);
      stats_.reserved_bytes -= size * blocks.size();
      stats_.cached_bytes -= size * blocks.size();
    }
    free_.clear();
  }

  static std::string fmt_oom(size_t size, size_t free_bytes, size_t total_bytes) {
    auto gib = [](size_t b) { return std::to_string(static_cast<double>(b) / (1u << 30)).substr(0, 6); };
    return "out of GPU memory: an allocation of " + gib(size) + " GiB failed with " + gib(free_bytes) +
           " GiB free of " + gib(total_bytes) + " GiB (use a smaller --micro-batch or --seq-len, or more --tp/--pp/--sp)";
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

CachingAllocator& caching_allocator() {
  static CachingAllocator allocator;
  return allocator;
}

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
  return caching_allocator();
}

MemoryStats memory_stats() { return caching_allocator().stats(); }
void reset_peak_memory() { caching_allocator().reset_peak(); }
void release_cached_memory() { caching_allocator().release_cache(); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, copy_kind(dst_device, src_device)));
}

void memset_zero(void* ptr, size_t bytes) { CUDA_CHECK(cudaMemset(ptr, 0, bytes)); }

void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace linpar::cuda
