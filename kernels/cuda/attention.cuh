// Shared by kernels/cuda/attention*.cu: the visibility rule on the device, launch parameters and
// the FMA tile size constants (generic warp/scratch helpers come from helpers.cuh).
//
// The visibility rule must agree bit for bit with kernels/cpu/attention.cpp (the reference):
// query i of Tq sits at absolute position Tk - Tq + i; a query before the first key (Tq > Tk)
// belongs to no document, so with document_ids it sees nothing.
// Invariant: every kernel treats a row with no visible key as out = 0, lse = -inf, and gives it
// zero gradient — the "-inf minus -inf" case is always steered away from exp().
#pragma once

#include <math_constants.h>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"

namespace tiller::kernels::attention_detail {

// Generic (FMA) tiles: 16 query rows x 32 keys per step, 128 threads (4 warps). 16 x 32 = 512
// score entries = 4 per thread, and 32 keys = one warp width, so a warp reads 32 different key
// rows of the padded smem tile without bank conflicts.
constexpr int kFmaThreads = 128;
constexpr int kFmaQueryRows = 16;
constexpr int kFmaKeys = 32;
constexpr int64_t kMaxHeadDim = 256;  // generic path; smem grows linearly with D
// Decode path: queries per (b, head) at or below this use split-K over the keys.
constexpr int64_t kDecodeMaxQueries = 16;

struct Params {
  int64_t B, Hq, Hkv, Tq, Tk, D;
  int64_t group;  // query heads per kv head
  float scale;
  bool causal;
  const int32_t* mask;  // (B, Tk) or null
  const int32_t* docs;  // (B, Tk) or null
};

inline Params make_params(const AttentionShape& s) {
  return Params{s.B,           s.Hq,         s.Hkv,   s.Tq,     s.Tk,
                s.D,           s.Hq / s.Hkv, s.scale, s.causal, s.key_padding_mask,
                s.document_ids};
}

// First key index a query row may never see: causal limit (or Tk), clamped to [0, Tk].
__device__ __forceinline__ int64_t key_end_for_query(const Params& p, int64_t query) {
  int64_t pos = p.Tk - p.Tq + query;
  if (!p.causal) return p.Tk;
  return pos + 1 < 0 ? 0 : (pos + 1 > p.Tk ? p.Tk : pos + 1);
}

__device__ __forceinline__ bool key_visible(const Params& p, int64_t b, int64_t query,
                                            int64_t key) {
  int64_t pos = p.Tk - p.Tq + query;
  if (key >= p.Tk) return false;
  if (p.causal && key > pos) return false;
  if (p.mask && p.mask[b * p.Tk + key] == 0) return false;
  if (p.docs) {
    if (pos < 0 || pos >= p.Tk) return false;
    if (p.docs[b * p.Tk + key] != p.docs[b * p.Tk + pos]) return false;
  }
  return true;
}

// Kernels with more than the default 48 KiB of dynamic shared memory must opt in per function.
template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  constexpr size_t kDefaultLimit = 48 * 1024;
  if (bytes > kDefaultLimit)
    TILLER_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
}

using cuda_detail::current_device;
using cuda_detail::ScratchBuffer;
using cuda_detail::warp_max;
using cuda_detail::warp_sum;

inline int multiprocessor_count() {
  int count = 0;
  TILLER_CUDA_CHECK(
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, current_device()));
  return count;
}

inline int compute_capability_major() {
  int major = 0;
  TILLER_CUDA_CHECK(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, current_device()));
  return major;
}

}  // namespace tiller::kernels::attention_detail
