// CUDA device memory for kernels/memory.h: a caching allocator, copies, memset, synchronize.
//
// Design (the PyTorch caching-allocator idea, cut down to what tiller needs):
//   - Requests are rounded up to a size bin; a freed block goes onto its bin's free list on its
//     device and the next request of that bin takes it back. A training step allocates the same
//     sizes every step, so after the first step no cudaMalloc/cudaFree happens at all.
//   - Bins: multiples of 512 B up to 1 MiB (small activations, scalars), then multiples of 1/8
//     of the next power of two (at most 12.5% waste on large blocks while keeping the number of
//     distinct bins small, so blocks of slightly different sizes share a bin).
//   - Exact-bin reuse only (no splitting of larger blocks): simple, no fragmentation bookkeeping.
//   - When cudaMalloc fails, the device's cache is released and the allocation retried once.
//   - Every kernel and copy runs on the legacy default stream, so a block released while a kernel
//     that uses it is still queued is safe to hand out again: whatever uses it next is queued
//     behind that kernel. (A multi-stream future must record events per block.)
// Thread safety: one mutex guards the whole allocator (allocation is not on a hot inner loop).
// The allocator is created on first use and intentionally never destroyed: at process exit the
// CUDA runtime may already be torn down, and the driver frees the memory anyway.
// release() never throws: it is called from Storage's destructor.
// Every host synchronisation goes through blocking(), which counts it (host_sync_count()).
// The true synchronisation points (synchronize, device-to-host copies) also bring back the
// token-fault record (kernels/token_check.h): an async copy queued just before the blocking call,
// so reading it costs no extra wait, and a fault found there is thrown as tiller::Error.
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/error.h"
#include "kernels/memory.h"

namespace tiller::kernels::cuda {

namespace {

std::atomic<uint64_t> host_syncs{0};

// The one door for calls that make the host wait for the device: counts, then runs the call.
template <typename Call>
void blocking(const char* what, Call&& call) {
  host_syncs.fetch_add(1, std::memory_order_relaxed);
  cudaError_t status = call();
  if (status != cudaSuccess) cuda_detail::throw_cuda(status, what, __FILE__, __LINE__);
}

// Per device: the record the check kernels write and its pinned host mirror.
struct FaultRecords {
  cuda_detail::TokenFault* device = nullptr;
  cuda_detail::TokenFault* mirror = nullptr;
};

std::mutex fault_mutex;
std::map<int, FaultRecords> fault_records;  // never destroyed memory, like the allocator

FaultRecords* current_fault_records(bool create) {
  int device = 0;
  TILLER_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(fault_mutex);
  auto it = fault_records.find(device);
  if (it != fault_records.end()) return &it->second;
  if (!create) return nullptr;
  FaultRecords records;
  TILLER_CUDA_CHECK(cudaMalloc(&records.device, sizeof(cuda_detail::TokenFault)));
  TILLER_CUDA_CHECK(cudaMemsetAsync(records.device, 0, sizeof(cuda_detail::TokenFault), 0));
  TILLER_CUDA_CHECK(cudaMallocHost(&records.mirror, sizeof(cuda_detail::TokenFault)));
  *records.mirror = cuda_detail::TokenFault{};
  return &fault_records.emplace(device, records).first->second;
}

// A synchronisation point: queue the record's copy, make the blocking call, then raise a fault.
template <typename Call>
void blocking_checked(const char* what, Call&& call) {
  FaultRecords* records = current_fault_records(/*create=*/false);
  if (records != nullptr)
    TILLER_CUDA_CHECK(cudaMemcpyAsync(records->mirror, records->device,
                                      sizeof(cuda_detail::TokenFault), cudaMemcpyDeviceToHost, 0));
  blocking(what, call);
  if (records == nullptr || records->mirror->flag == 0) return;
  const cuda_detail::TokenFault fault = *records->mirror;
  *records->mirror = cuda_detail::TokenFault{};
  TILLER_CUDA_CHECK(cudaMemsetAsync(records->device, 0, sizeof(cuda_detail::TokenFault), 0));
  fail("{}: {}[{}] = {} is out of range [0, {}) (found on the GPU and reported at this host "
       "synchronisation ({}); kernels queued after it treated that id as absent)",
       fault.op, fault.name, fault.index, fault.value, fault.V, what);
}

constexpr size_t kSmallGranule = 512;         // bytes; also the alignment every block gets
constexpr size_t kSmallLimit = size_t{1} << 20;  // up to 1 MiB, bins are 512 B apart

size_t round_to_bin(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  size_t power = kSmallLimit;
  while (power < bytes) power <<= 1;
  size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

struct DeviceCache {
  std::map<size_t, std::vector<void*>> free_blocks;  // bin size -> cached blocks
  std::unordered_map<void*, size_t> live_blocks;     // handed-out block -> its bin size
};

class CachingAllocator {
 public:
  void* allocate(size_t bytes, int device) {
    size_t bin = round_to_bin(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = caches_[device];
    auto it = cache.free_blocks.find(bin);
    if (it != cache.free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      cache.live_blocks.emplace(ptr, bin);
      stats_.bytes_cached -= bin;
      stats_.bytes_in_use += bin;
      ++stats_.cache_hits;
      return ptr;
    }
    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, bin);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the sticky-free error before retrying
      release_cached(cache);
      status = cudaMalloc(&ptr, bin);
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      fail("cuda::allocate: cudaMalloc of {} bytes (bin {}) on cuda:{} failed: {} ({} bytes in "
           "use, {} cached)",
           bytes, bin, device, cudaGetErrorString(status), stats_.bytes_in_use,
           stats_.bytes_cached);
    }
    ++stats_.system_allocations;
    stats_.bytes_in_use += bin;
    cache.live_blocks.emplace(ptr, bin);
    return ptr;
  }

  void release(void* ptr, int device) noexcept {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = caches_[device];
    auto it = cache.live_blocks.find(ptr);
    if (it == cache.live_blocks.end()) {
      std::fprintf(stderr, "tiller cuda::release: %p was not allocated on cuda:%d; ignored\n",
                   ptr, device);
      return;
    }
    size_t bin = it->second;
    cache.live_blocks.erase(it);
    cache.free_blocks[bin].push_back(ptr);
    stats_.bytes_in_use -= bin;
    stats_.bytes_cached += bin;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [device, cache] : caches_) {
      DeviceGuard guard(device);
      release_cached(cache);
    }
  }

 private:
  // Makes `device` current for its scope, restoring the previous one afterwards.
  class DeviceGuard {
   public:
    explicit DeviceGuard(int device) {
      TILLER_CUDA_CHECK(cudaGetDevice(&previous_));
      if (previous_ != device) TILLER_CUDA_CHECK(cudaSetDevice(device));
      device_ = device;
    }
    ~DeviceGuard() {
      if (previous_ != device_) (void)cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

   private:
    int previous_ = 0;
    int device_ = 0;
  };

  // Caller holds mutex_ and has made the cache's device current. Synchronises first: a cached
  // block may still be used by a queued kernel (see the stream note at the top).
  void release_cached(DeviceCache& cache) {
    blocking("cudaDeviceSynchronize (releasing the cache)", [] { return cudaDeviceSynchronize(); });
    for (auto& [bin, blocks] : cache.free_blocks) {
      for (void* ptr : blocks) {
        TILLER_CUDA_CHECK(cudaFree(ptr));
        stats_.bytes_cached -= bin;
      }
      blocks.clear();
    }
  }

  std::mutex mutex_;
  std::map<int, DeviceCache> caches_;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  static auto* instance = new CachingAllocator();  // never destroyed; see the header comment
  return *instance;
}

}  // namespace

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: report none, don't throw
      return 0;
    }
    return n;
  }();
  return count;
}

bool available() { return device_count() > 0; }

void set_device(int index) {
  TILLER_CHECK(index >= 0 && index < device_count(),
               "cuda::set_device: device {} requested but {} CUDA device(s) present", index,
               device_count());
  TILLER_CUDA_CHECK(cudaSetDevice(index));
}

void* allocate(size_t bytes, int device) {
  TILLER_CHECK(device >= 0 && device < device_count(),
               "cuda::allocate: device {} requested but {} CUDA device(s) present", device,
               device_count());
  return allocator().allocate(bytes, device);
}

void release(void* ptr, int device) { allocator().release(ptr, device); }

// Host<->device copies are synchronous (cudaMemcpy): the host buffer may be reused on return,
// and a device-to-host copy waits for the kernels that produce its data.
void copy_host_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  blocking("cudaMemcpy host to device",
           [&] { return cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice); });
}

void copy_device_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  blocking_checked("cudaMemcpy device to host",
                   [&] { return cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost); });
}

void copy_device_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  TILLER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}

void memset_zero(void* ptr, size_t bytes) {
  if (bytes == 0) return;
  TILLER_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, 0));
}

void synchronize() {
  blocking_checked("cudaDeviceSynchronize", [] { return cudaDeviceSynchronize(); });
}

uint64_t host_sync_count() { return host_syncs.load(std::memory_order_relaxed); }

AllocatorStats allocator_stats() { return allocator().stats(); }

void empty_cache() { allocator().empty_cache(); }

}  // namespace tiller::kernels::cuda

namespace tiller::kernels::cuda_detail {
TokenFault* token_fault_record() { return cuda::current_fault_records(/*create=*/true)->device; }
}  // namespace tiller::kernels::cuda_detail
