// CPU memory: 64-byte aligned blocks from the C runtime (it already caches small blocks).
#include <cstdlib>
#include <new>

#include "core/error.h"
#include "kernels/memory.h"

namespace tiller::kernels::cpu {

void* allocate(size_t bytes) {
  constexpr size_t kAlignment = 64;  // one cache line; also the widest AVX-512 load
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  TILLER_CHECK(p != nullptr, "cpu allocate: out of memory allocating {} bytes", bytes);
  return p;
}

void release(void* ptr) { std::free(ptr); }

}  // namespace tiller::kernels::cpu
