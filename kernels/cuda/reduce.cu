// CUDA reductions and layout kernels for kernels/reduce.h.
//
// Reductions are deterministic: a shape always splits into the same chunks, each chunk is summed
// by one block in a fixed order (strided per thread, then block_sum), and the chunk partials
// (scratch from the caching allocator) are added in index order by a second kernel. No float
// atomics anywhere, so a rerun gives the same bits.
//   sum_dim, inner == 1 (a row sum):  grid (outer, chunks) of 256 threads along the row.
//   sum_dim, inner > 1 (a column sum): blocks of 32 x 8 threads, 32 consecutive columns per block
//     (coalesced 128-byte rows) and 8 row-groups that meet in shared memory; grid x covers
//     (outer, column tiles), grid y the row chunks.
// Chunks are chosen so that even outer = 1 fills the GPU (~kTargetBlocks blocks).
// Bytes: one read of x + a write of out (+ chunks * out for the partials); FLOPs: 1 per element.
// permute: one thread per output element (writes coalesced, reads gathered); copy_rows is a
// strided 2-D cudaMemcpy, which the copy engines already do at full bandwidth.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/reduce.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kRowThreads = 256;
constexpr int kTileColumns = 32;     // one warp of consecutive columns
constexpr int kTileRowGroups = 8;    // 32 x 8 = 256 threads per column-sum block
constexpr int64_t kTargetBlocks = 1024;  // ~8 blocks per SM on a 132-SM H100
constexpr int64_t kMinRowElems = 4096;   // per chunk of a row sum: keeps each block busy
constexpr int64_t kMinColumnRows = 64;   // per chunk of a column sum

int64_t chunk_count(int64_t work_blocks, int64_t n, int64_t min_per_chunk) {
  int64_t wanted = (kTargetBlocks + work_blocks - 1) / work_blocks;
  int64_t most = (n + min_per_chunk - 1) / min_per_chunk;
  int64_t chunks = wanted < most ? wanted : most;
  return chunks < 1 ? 1 : chunks;
}

// partial[o * chunks + k] = sum over the k-th chunk of row o of f(x).
template <typename T, bool kSquare>
__global__ void row_partial_kernel(const T* x, float* partial, int64_t n, int64_t chunk_len) {
  __shared__ float shared[32];
  int64_t o = blockIdx.x, k = blockIdx.y;
  const T* row = x + o * n;
  int64_t begin = k * chunk_len;
  int64_t end = begin + chunk_len < n ? begin + chunk_len : n;
  float acc = 0.f;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    float v = load_f32(row, j);
    acc += kSquare ? v * v : v;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[o * gridDim.y + k] = acc;
}

// out[o] = sum_k partial[o * chunks + k], in k order.
template <typename T>
__global__ void row_finish_kernel(const float* partial, T* out, int64_t outer, int64_t chunks) {
  int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= outer) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[o * chunks + k];
  store_f32(out, o, acc);
}

// partial[(k * outer + o) * inner + c] = sum over chunk k of x[o, j, c].
template <typename T>
__global__ void column_partial_kernel(const T* x, float* partial, int64_t outer, int64_t n,
                                      int64_t inner, int64_t tiles, int64_t chunk_len) {
  __shared__ float shared[kTileRowGroups][kTileColumns];
  int64_t o = blockIdx.x / tiles, tile = blockIdx.x % tiles, k = blockIdx.y;
  int64_t c = tile * kTileColumns + threadIdx.x;
  int64_t begin = k * chunk_len;
  int64_t end = begin + chunk_len < n ? begin + chunk_len : n;
  float acc = 0.f;
  if (c < inner) {
    const T* base = x + o * n * inner + c;
    for (int64_t j = begin + threadIdx.y; j < end; j += kTileRowGroups)
      acc += load_f32(base, j * inner);
  }
  shared[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < inner) {
    float total = 0.f;
    for (int g = 0; g < kTileRowGroups; ++g) total += shared[g][threadIdx.x];
    partial[(k * outer + o) * inner + c] = total;
  }
}

// out[o, c] = sum_k partial[k, o, c], in k order. One thread per output (coalesced along c).
template <typename T>
__global__ void column_finish_kernel(const float* partial, T* out, int64_t outputs,
                                     int64_t chunks) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= outputs) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * outputs + i];
  store_f32(out, i, acc);
}

// *result += sum of the partials (one block, fixed order).
__global__ void add_total_kernel(const float* partial, int64_t count, float* result) {
  __shared__ float shared[32];
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *result += acc;
}

struct PermuteArgs {
  int ndim = 0;
  int64_t out_shape[kMaxDims] = {};
  int64_t source_stride[kMaxDims] = {};  // input stride of the input dim that out dim d reads
};

template <typename Element>
__global__ void permute_kernel(const Element* x, Element* out, PermuteArgs args, int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t src = 0, rem = i;
    for (int d = args.ndim - 1; d >= 0; --d) {
      src += (rem % args.out_shape[d]) * args.source_stride[d];
      rem /= args.out_shape[d];
    }
    out[i] = x[src];
  }
}

}  // namespace

template <>
void sum_dim<Backend::cuda>(const void* x, void* out, int64_t outer, int64_t n, int64_t inner,
                            DType dtype) {
  if (outer == 0 || inner == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "sum_dim", {
    const T* input = static_cast<const T*>(x);
    T* output = static_cast<T*>(out);
    if (inner == 1) {
      int64_t chunks = chunk_count(outer, n, kMinRowElems);
      int64_t chunk_len = (n + chunks - 1) / chunks;
      ScratchBuffer partial(outer * chunks * sizeof(float));
      row_partial_kernel<T, false><<<dim3(static_cast<unsigned>(outer), chunks), kRowThreads>>>(
          input, partial.as<float>(), n, chunk_len);
      TILLER_CUDA_CHECK_LAUNCH();
      row_finish_kernel<T><<<blocks_for(outer, kRowThreads), kRowThreads>>>(
          partial.as<float>(), output, outer, chunks);
      TILLER_CUDA_CHECK_LAUNCH();
    } else {
      int64_t tiles = (inner + kTileColumns - 1) / kTileColumns;
      int64_t chunks = chunk_count(outer * tiles, n, kMinColumnRows);
      int64_t chunk_len = (n + chunks - 1) / chunks;
      ScratchBuffer partial(chunks * outer * inner * sizeof(float));
      dim3 grid(static_cast<unsigned>(outer * tiles), static_cast<unsigned>(chunks));
      column_partial_kernel<T><<<grid, dim3(kTileColumns, kTileRowGroups)>>>(
          input, partial.as<float>(), outer, n, inner, tiles, chunk_len);
      TILLER_CUDA_CHECK_LAUNCH();
      column_finish_kernel<T><<<blocks_for(outer * inner, kRowThreads), kRowThreads>>>(
          partial.as<float>(), output, outer * inner, chunks);
      TILLER_CUDA_CHECK_LAUNCH();
    }
  });
}

template <>
void sum_squares<Backend::cuda>(const void* x, int64_t n, float* result, DType dtype) {
  if (n == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "sum_squares", {
    int64_t chunks = chunk_count(1, n, kMinRowElems);
    int64_t chunk_len = (n + chunks - 1) / chunks;
    ScratchBuffer partial(chunks * sizeof(float));
    row_partial_kernel<T, true><<<dim3(1, static_cast<unsigned>(chunks)), kRowThreads>>>(
        static_cast<const T*>(x), partial.as<float>(), n, chunk_len);
    TILLER_CUDA_CHECK_LAUNCH();
    add_total_kernel<<<1, kRowThreads>>>(partial.as<float>(), chunks, result);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void permute<Backend::cuda>(const void* x, void* out, int ndim, const int64_t* in_shape,
                            const int* perm, DType dtype) {
  TILLER_CHECK(ndim <= kMaxDims, "permute: at most {} dims, got {}", kMaxDims, ndim);
  PermuteArgs args;
  args.ndim = ndim;
  int64_t in_stride[kMaxDims];
  int64_t n = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    in_stride[d] = n;
    n *= in_shape[d];
  }
  for (int d = 0; d < ndim; ++d) {
    args.out_shape[d] = in_shape[perm[d]];
    args.source_stride[d] = in_stride[perm[d]];
  }
  if (n == 0) return;
  unsigned grid = grid_for(n, kRowThreads);
  if (dtype_size(dtype) == 2) {
    permute_kernel<uint16_t><<<grid, kRowThreads>>>(static_cast<const uint16_t*>(x),
                                                    static_cast<uint16_t*>(out), args, n);
  } else {
    permute_kernel<uint32_t><<<grid, kRowThreads>>>(static_cast<const uint32_t*>(x),
                                                    static_cast<uint32_t*>(out), args, n);
  }
  TILLER_CUDA_CHECK_LAUNCH();
}

template <>
void copy_rows<Backend::cuda>(const void* src, int64_t src_stride, void* dst, int64_t dst_stride,
                              int64_t rows, int64_t row_elems, DType dtype) {
  if (rows == 0 || row_elems == 0) return;
  size_t elem = dtype_size(dtype);
  if (rows == 1) {
    TILLER_CUDA_CHECK(cudaMemcpyAsync(dst, src, row_elems * elem, cudaMemcpyDeviceToDevice, 0));
    return;
  }
  TILLER_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_stride * elem, src, src_stride * elem,
                                      row_elems * elem, rows, cudaMemcpyDeviceToDevice, 0));
}

}  // namespace tiller::kernels
