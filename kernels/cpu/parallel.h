// OpenMP helpers for the CPU backend.
//
// parallel_for splits [0, n) into contiguous chunks, one per thread, and runs serially when the
// work is too small to pay for waking threads (~ kMinParallelWork scalar operations).
// parallel_blocks hands out coarse blocks dynamically (below).
// Results never depend on the thread count: every reduction in the CPU backend is either
// per-output (no cross-thread sums) or combined in a fixed order.
#pragma once

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "kernels/error.h"
#include "kernels/dtype.h"

namespace tiller::kernels::cpu {

constexpr int64_t kMinParallelWork = 1 << 15;

// fn(begin, end) over chunks of [0, n); `cost` is the work per index, in scalar operations.
template <typename Fn>
void parallel_for(int64_t n, int64_t cost, Fn&& fn) {
#if defined(_OPENMP)
  if (n > 1 && n * cost >= kMinParallelWork && !omp_in_parallel()) {
#pragma omp parallel
    {
      int64_t threads = omp_get_num_threads();
      int64_t t = omp_get_thread_num();
      int64_t chunk = (n + threads - 1) / threads;
      int64_t begin = t * chunk;
      int64_t end = begin + chunk < n ? begin + chunk : n;
      if (begin < end) fn(begin, end);
    }
    return;
  }
#endif
  (void)cost;
  if (n > 0) fn(int64_t{0}, n);
}

// fn(block) for every block in [0, blocks), handed to whichever thread is free next: for coarse
// blocks of equal cost (the optimizer's chunks). A thread that falls behind — it lost its core to
// another process, or its blocks cost more — then delays the end by one block, not by the half
// of the work a static split gave it. The blocks themselves must not depend on which thread
// runs them, so results stay independent of scheduling.
template <typename Fn>
void parallel_blocks(int64_t blocks, Fn&& fn) {
#if defined(_OPENMP)
  if (blocks > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t block = 0; block < blocks; ++block) fn(block);
    return;
  }
#endif
  for (int64_t block = 0; block < blocks; ++block) fn(block);
}

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The CPU backend computes in f32; core/ converts before calling. This guards the contract.
inline void require_f32(DType dtype, const char* kernel) {
  TILLER_CHECK(dtype == DType::f32, "{}: the CPU backend computes in f32, got {}", kernel,
               dtype_name(dtype));
}

}  // namespace tiller::kernels::cpu
