// Raw memory for each device: the only place that allocates, frees and copies device buffers.
//
// CPU memory is 64-byte aligned (one cache line; lets the compiler vectorise freely). Both devices
// use a caching allocator (kernels/cpu/memory.cpp, kernels/cuda/memory.cu): freed blocks are kept
// in size-binned free lists and reused, so steady-state training makes no malloc/free (and no
// page faults) on the CPU and no cudaMalloc/cudaFree calls on the GPU.
// Without CUDA the cuda:: functions throw tiller::Error naming the call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tiller::kernels {

namespace cpu {
void* allocate(size_t bytes);
void release(void* ptr);  // ptr from allocate() or nullptr; the block may be cached for reuse
// Caching allocator statistics, for tests and benchmarks. Bytes count whole size classes.
struct CpuAllocatorStats {
  size_t system_allocations = 0;  // blocks taken from the C runtime so far
  size_t cache_hits = 0;          // allocations served from the free lists
  size_t bytes_in_use = 0;
  size_t bytes_cached = 0;        // freed and kept; capped (TILLER_CPU_CACHE_BYTES, default 2 GiB)
};
CpuAllocatorStats allocator_stats();
void empty_cache();  // returns every cached block to the C runtime
}  // namespace cpu

namespace cuda {
bool available();                 // true when the build has CUDA and a device is present
int device_count();               // 0 without CUDA or without a device
void set_device(int index);
void* allocate(size_t bytes, int device);
void release(void* ptr, int device);
void copy_host_to_device(void* dst, const void* src, size_t bytes);
void copy_device_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
void memset_zero(void* ptr, size_t bytes);
void synchronize();
// Host synchronisations so far in this process: every call above that makes the host wait for the
// device (synchronize, the blocking host<->device copies, releasing the cache) counts one. Each
// one stalls the queue; tests pin how many a training step makes.
uint64_t host_sync_count();
// Caching allocator statistics, for tests and benchmarks.
struct AllocatorStats {
  size_t device_allocations = 0;  // cudaMalloc calls made so far
  size_t bytes_in_use = 0;
  size_t bytes_cached = 0;
};
AllocatorStats allocator_stats();
void empty_cache();
}  // namespace cuda

}  // namespace tiller::kernels
