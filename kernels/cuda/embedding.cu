// CUDA token embedding (forward, deterministic backward) and rotary embedding, for
// kernels/embedding.h.
//
// Forward: one block per token copies its weight row with 16-byte loads when aligned.
// Backward: dweight[v] = sum of dout rows whose id is v. Float atomics would make the sum order
// (and so the bits) depend on scheduling, so the ids are grouped first, on the device and without
// a host round trip: CUB's stable radix sort orders the positions 0..N-1 by id (equal ids keep
// increasing n), a kernel turns the sorted ids into the offsets (V + 1) of each id's run. One
// block per vocabulary row then sums its rows in increasing n — the same serial order as the CPU
// reference — and every row of dweight is written exactly once (zeros for absent ids), so no
// memset is needed. Ids are range-checked by the embedding op before the forward; here an id
// outside [0, V) is clamped into the offsets (its gradient is dropped), never written out of
// bounds.
// Bytes: forward 2 N C; backward N C in + V C out.
// RoPE: one thread per rotated pair. Angles are computed in double (inverse frequency,
// pos * frequency, cos, sin) and rounded to f32 once, exactly like the CPU reference, so the two
// backends agree even at positions of 100k where an f32 angle is off by ~1e-2 rad.
// Bytes: 2 * B H T D * sizeof(T); FLOPs: 6 per pair plus the double sin/cos.
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/embedding.h"
#include "kernels/memory.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kThreads = 128;  // per embedding row: C = 768 is 96 bf16 packs, one pass

template <typename T, int V>
__global__ void embedding_forward_kernel(const int32_t* ids, const T* weight, T* out,
                                         int64_t rows, int64_t C) {
  int64_t n = blockIdx.x;
  const int64_t id = ids[n];
  T* dst = out + n * C;
  if (id < 0 || id >= rows) {  // reported by check_token_ids; a zero row meanwhile
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) store_f32(dst, i, 0.f);
    return;
  }
  const T* src = weight + id * C;
  for (int64_t i = threadIdx.x * V; i < C; i += blockDim.x * V)
    *reinterpret_cast<Pack<T, V>*>(dst + i) = *reinterpret_cast<const Pack<T, V>*>(src + i);
}

// Block v: dweight[v, :] = sum over k in [offsets[v], offsets[v+1]) of dout[order[k], :].
template <typename T>
__global__ void embedding_backward_kernel(const int32_t* offsets, const int32_t* order,
                                          const T* dout, T* dweight, int32_t N, int64_t C) {
  int64_t v = blockIdx.x;
  // With an out-of-range id in the batch (reported by check_token_ids) the sort over the bits of
  // V leaves some offsets unwritten: clamp, so only positions in [0, N) are ever read.
  int32_t begin = min(max(offsets[v], 0), N), end = min(max(offsets[v + 1], begin), N);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.f;
    for (int32_t k = begin; k < end; ++k) acc += load_f32(dout, order[k] * C + c);
    store_f32(dweight, v * C + c, acc);
  }
}

__global__ void iota_kernel(int32_t* values, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) values[i] = static_cast<int32_t>(i);
}

// offsets[v] = the first index i of sorted ids with sorted[i] >= v, for v in [0, V]: each
// boundary between two runs (and the two ends) writes the offsets of the ids it skips over.
__global__ void run_offsets_kernel(const int32_t* sorted, int64_t N, int64_t V,
                                   int32_t* offsets) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i > N) return;
  auto clamp_id = [V](int64_t id) { return id < 0 ? int64_t{0} : (id > V ? V : id); };
  int64_t previous = i == 0 ? -1 : clamp_id(sorted[i - 1]);
  int64_t current = i == N ? V : clamp_id(sorted[i]);
  for (int64_t v = previous + 1; v <= current; ++v) offsets[v] = static_cast<int32_t>(i);
}

template <typename T>
__global__ void rope_kernel(const T* x, const int32_t* positions, T* out, int64_t heads,
                            int64_t time_steps, int64_t D, double theta, bool inverse,
                            int64_t pairs) {
  int64_t half = D / 2;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs;
       p += stride) {
    int64_t i = p % half, row = p / half;  // row indexes (b, h, t)
    int64_t t = row % time_steps, b = row / (heads * time_steps);
    double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    double position = positions[b * time_steps + t];
    double angle = (inverse ? -1.0 : 1.0) * position * inv_freq;
    double sin_angle, cos_angle;
    sincos(angle, &sin_angle, &cos_angle);
    float c = static_cast<float>(cos_angle), s = static_cast<float>(sin_angle);
    int64_t base = row * D;
    float first = load_f32(x, base + i), second = load_f32(x, base + i + half);
    store_f32(out, base + i, first * c - second * s);
    store_f32(out, base + i + half, second * c + first * s);
  }
}

}  // namespace

template <>
void embedding_forward<Backend::cuda>(const int32_t* ids, const void* weight, void* out,
                                      int64_t N, int64_t V, int64_t C, DType dtype) {
  if (N == 0 || C == 0) return;
  TILLER_CHECK(N <= INT32_MAX, "embedding_forward: {} tokens exceed one grid dimension", N);
  TILLER_DISPATCH_FLOAT(dtype, "embedding_forward", {
    auto run = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(N), kThreads>>>(ids, static_cast<const T*>(weight),
                                                      static_cast<T*>(out), V, C);
    };
    if (pack_width(C, sizeof(T), {weight, out}) > 1)
      run(embedding_forward_kernel<T, kPackWidth<T>>);
    else
      run(embedding_forward_kernel<T, 1>);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void embedding_backward<Backend::cuda>(const int32_t* ids, const void* dout, void* dweight,
                                       int64_t N, int64_t V, int64_t C, DType dtype) {
  if (V == 0 || C == 0) return;
  TILLER_CHECK(N < INT32_MAX && V < INT32_MAX,
               "embedding_backward: N = {} and V = {} must fit int32 offsets", N, V);
  TILLER_CHECK(dtype == DType::f32 || dtype == DType::bf16,
               "embedding_backward: CUDA takes f32 or bf16, got {}", dtype_name(dtype));

  // Stable device sort of the positions by id, then each id's run offsets.
  int end_bit = 1;
  while (end_bit < 31 && (int64_t{1} << end_bit) < V) ++end_bit;
  size_t sort_bytes = 0;
  TILLER_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(N),
      0, end_bit));
  // One scratch block: sorted ids (N), positions (N), ordered positions (N), offsets (V + 1),
  // then CUB's temporary storage (16-byte aligned).
  size_t index_bytes = sizeof(int32_t) * static_cast<size_t>(3 * N + V + 1);
  size_t sort_offset = (index_bytes + 15) / 16 * 16;
  ScratchBuffer scratch(sort_offset + std::max<size_t>(sort_bytes, 1));
  int32_t* sorted_ids = scratch.as<int32_t>();
  int32_t* positions = sorted_ids + N;
  int32_t* order = positions + N;
  int32_t* device_offsets = order + N;
  if (N > 0) {
    constexpr int kIndexThreads = 256;
    iota_kernel<<<blocks_for(N, kIndexThreads), kIndexThreads>>>(positions, N);
    TILLER_CUDA_CHECK_LAUNCH();
    TILLER_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        scratch.as<unsigned char>() + sort_offset, sort_bytes, ids, sorted_ids, positions, order,
        static_cast<int>(N), 0, end_bit));
  }
  run_offsets_kernel<<<blocks_for(N + 1, 256), 256>>>(sorted_ids, N, V, device_offsets);
  TILLER_CUDA_CHECK_LAUNCH();
  TILLER_DISPATCH_FLOAT(dtype, "embedding_backward", {
    embedding_backward_kernel<T><<<static_cast<unsigned>(V), kThreads>>>(
        device_offsets, order, static_cast<const T*>(dout),
        static_cast<T*>(dweight), static_cast<int32_t>(N), C);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void rope<Backend::cuda>(const void* x, const int32_t* positions, void* out, int64_t batch, int64_t heads,
          int64_t T, int64_t D, float theta, bool inverse, DType dtype) {
  int64_t pairs = batch * heads * T * (D / 2);
  if (pairs == 0) return;
  constexpr int kRopeThreads = 256;
  int64_t time_steps = T;  // TILLER_DISPATCH_FLOAT binds the name T to the element type
  TILLER_DISPATCH_FLOAT(dtype, "rope", {
    rope_kernel<T><<<grid_for(pairs, kRopeThreads), kRopeThreads>>>(
        static_cast<const T*>(x), positions, static_cast<T*>(out), heads, time_steps, D,
        static_cast<double>(theta), inverse, pairs);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tiller::kernels
