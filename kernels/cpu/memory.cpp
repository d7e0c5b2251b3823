// CPU memory: a caching allocator over 64-byte aligned blocks from the C runtime.
//
// Why cache: a training step allocates the same activation and gradient sizes every step. glibc
// returns large blocks (> its mmap threshold) to the kernel on free, so each step would page-fault
// and zero-fill them again (~5% of a CPU step). Freed blocks go to a free list keyed by size
// class instead, and the next request of that class reuses one.
// Design choices:
//   - Size classes: requests round up to 64 bytes, then to one of 8 steps per power of two, so
//     a cached block is at most 12.5% larger than asked for and nearby sizes share blocks.
//   - The class is stored in a 64-byte header in front of the user pointer (release() gets only
//     the pointer); the user pointer stays 64-byte aligned.
//   - Thread-safe behind one mutex: allocations come from op boundaries, not inner loops.
//   - Cached (free) bytes are capped (kCacheCapBytes, or TILLER_CPU_CACHE_BYTES in the
//     environment); a block freed when the cache is full goes back to the C runtime. Under
//     AddressSanitizer the cap is 0, so use-after-free is still caught.
// Invariant: every pointer handed out came from allocate() and carries its header; release()
// of any other pointer is undefined, exactly as with free().
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "kernels/error.h"
#include "kernels/memory.h"

namespace tiller::kernels::cpu {

namespace {

constexpr size_t kAlignment = 64;  // one cache line; also the widest AVX-512 load
constexpr size_t kHeaderBytes = kAlignment;
constexpr size_t kCacheCapBytes = size_t{2} << 30;
constexpr int kStepsPerPowerOfTwo = 8;

struct BlockHeader {
  size_t class_bytes;  // usable bytes after the header
};

// Smallest size class >= bytes: a multiple of 64 with at most 3 significant bits after the
// leading one above 512 bytes (8 steps per power of two).
size_t size_class(size_t bytes) {
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded <= kAlignment * kStepsPerPowerOfTwo) return rounded == 0 ? kAlignment : rounded;
  int top_bit = 63 - __builtin_clzll(rounded);
  size_t step = size_t{1} << (top_bit - 3);
  return (rounded + step - 1) / step * step;
}

size_t cache_cap_from_environment() {
#if defined(__SANITIZE_ADDRESS__)
  return 0;  // a cache would hide use-after-free from AddressSanitizer
#endif
  const char* text = std::getenv("TILLER_CPU_CACHE_BYTES");
  if (!text || !*text) return kCacheCapBytes;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text, &end, 10);
  TILLER_CHECK(end && *end == '\0',
               "cpu allocator: TILLER_CPU_CACHE_BYTES='{}' is not a byte count", text);
  return static_cast<size_t>(value);
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    size_t class_bytes = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_lists_.find(class_bytes);
      if (it != free_lists_.end() && !it->second.empty()) {
        void* user = it->second.back();
        it->second.pop_back();
        stats_.bytes_cached -= class_bytes;
        stats_.bytes_in_use += class_bytes;
        ++stats_.cache_hits;
        return user;
      }
      ++stats_.system_allocations;
      stats_.bytes_in_use += class_bytes;
    }
    void* raw = std::aligned_alloc(kAlignment, kHeaderBytes + class_bytes);
    if (!raw) {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.bytes_in_use -= class_bytes;
      fail("cpu allocate: out of memory allocating {} bytes", bytes);
    }
    static_cast<BlockHeader*>(raw)->class_bytes = class_bytes;
    return static_cast<char*>(raw) + kHeaderBytes;
  }

  void release(void* user) {
    if (!user) return;
    void* raw = static_cast<char*>(user) - kHeaderBytes;
    size_t class_bytes = static_cast<BlockHeader*>(raw)->class_bytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.bytes_in_use -= class_bytes;
      if (stats_.bytes_cached + class_bytes <= cap_) {
        free_lists_[class_bytes].push_back(user);
        stats_.bytes_cached += class_bytes;
        return;
      }
    }
    std::free(raw);
  }

  void empty_cache() {
    std::unordered_map<size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_lists_);
      stats_.bytes_cached = 0;
    }
    for (auto& [class_bytes, list] : blocks)
      for (void* user : list) std::free(static_cast<char*>(user) - kHeaderBytes);
  }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;
  CpuAllocatorStats stats_;
  size_t cap_ = cache_cap_from_environment();
};

// Never destroyed: tensors with static storage may be released after main returns.
CachingAllocator& allocator() {
  static auto* instance = new CachingAllocator();
  return *instance;
}

}  // namespace

void* allocate(size_t bytes) {
  return allocator().allocate(bytes);
}

void release(void* ptr) {
  allocator().release(ptr);
}

CpuAllocatorStats allocator_stats() {
  return allocator().stats();
}

void empty_cache() {
  allocator().empty_cache();
}

}  // namespace tiller::kernels::cpu
