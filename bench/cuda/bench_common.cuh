// Shared by the bench/cuda/*.cu programs: timing, input rotation, ceilings and JSON-line output.
//
// Method (the same in bench/torch_bench.py so the numbers compare):
//   - CUDA events around each launch (or launch group), after warm-up runs; the reported time is
//     the median of many runs, the run count sized to a fixed time budget per measurement;
//   - inputs are rotated over enough copies that one round of them exceeds 3x the L2 cache, so a
//     memory-bound kernel cannot read last run's data from L2;
//   - ceilings measured in the same process: a large device-to-device copy (GB/s, counting read +
//     write) and a cuBLAS bf16 GEMM 8192^3 (TFLOP/s, f32 accumulation). "% of ceiling" is against
//     the GEMM for compute-bound kernels and against the copy for memory-bound ones.
// Output: one JSON object per line on stdout, {"source":"tiller","kernel":...,"shape":...,...}.
// The shape string is the join key for bench/compare.py: keep it identical to torch_bench.py.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"

namespace bench {

// Device buffer owned by the benchmark (benchmarks allocate once, outside the timed region).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) TILLER_CUDA_CHECK(cudaMalloc(&ptr_, bytes_));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : bytes_(other.bytes_), ptr_(other.ptr_) {
    other.ptr_ = nullptr;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

// Values uniform in [-scale, scale) from a counter hash: reproducible, no host transfer.
template <typename T>
__global__ void fill_uniform_kernel(T* out, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    float unit = static_cast<float>(x >> 40) * (1.f / 16777216.f);  // 24 random bits in [0, 1)
    tiller::kernels::cuda_detail::store_f32(out, i, (2.f * unit - 1.f) * scale);
  }
}

template <typename T>
void fill_uniform(T* out, int64_t n, uint64_t seed, float scale = 1.f) {
  fill_uniform_kernel<T><<<1024, 256>>>(out, n, seed, scale);
  TILLER_CUDA_CHECK_LAUNCH();
}

__global__ inline void fill_targets_kernel(int32_t* out, int64_t n, int32_t V) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<int32_t>((i * 2654435761ll) % V);
}

inline size_t l2_bytes() {
  int device = 0, bytes = 0;
  TILLER_CUDA_CHECK(cudaGetDevice(&device));
  TILLER_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, device));
  return static_cast<size_t>(bytes);
}

// Copies of an input set needed so one rotation exceeds 3x L2, bounded by a quarter of the free
// memory and by 16.
inline int rotation_count(size_t bytes_per_set) {
  size_t free_bytes = 0, total = 0;
  TILLER_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  size_t wanted = (3 * l2_bytes() + bytes_per_set - 1) / std::max<size_t>(bytes_per_set, 1);
  size_t affordable = std::max<size_t>(1, free_bytes / 4 / std::max<size_t>(bytes_per_set, 1));
  return static_cast<int>(std::clamp<size_t>(wanted, 1, std::min<size_t>(16, affordable)));
}

struct Timing {
  double median_ms = 0, min_ms = 0;
  int runs = 0;
};

// Times launch(rotation) with CUDA events: 3 warm-up runs, then as many runs as fit in
// budget_ms (at least 5, at most 200); rotation cycles through [0, rotations).
template <typename Launch>
Timing time_it(Launch&& launch, int rotations, double budget_ms = 300.0) {
  cudaEvent_t start, stop;
  TILLER_CUDA_CHECK(cudaEventCreate(&start));
  TILLER_CUDA_CHECK(cudaEventCreate(&stop));
  auto timed = [&](int rotation) {
    TILLER_CUDA_CHECK(cudaEventRecord(start));
    launch(rotation % rotations);
    TILLER_CUDA_CHECK(cudaEventRecord(stop));
    TILLER_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.f;
    TILLER_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return static_cast<double>(ms);
  };
  constexpr int kWarmup = 3;
  double warm = 0;
  for (int i = 0; i < kWarmup; ++i) warm = timed(i);
  int runs = static_cast<int>(std::clamp(budget_ms / std::max(warm, 1e-3), 5.0, 200.0));
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) samples.push_back(timed(kWarmup + i));
  std::sort(samples.begin(), samples.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return {samples[samples.size() / 2], samples.front(), runs};
}

struct Ceilings {
  double copy_gbps = 0, gemm_tflops = 0;
};

// Measured once per program: the yardsticks every line of this run is compared against.
inline Ceilings measure_ceilings() {
  Ceilings c;
  {
    constexpr size_t kCopyBytes = size_t{1} << 30;
    DeviceBuffer src(kCopyBytes), dst(kCopyBytes);
    TILLER_CUDA_CHECK(cudaMemset(src.get(), 1, kCopyBytes));
    Timing t = time_it(
        [&](int) {
          TILLER_CUDA_CHECK(
              cudaMemcpyAsync(dst.get(), src.get(), kCopyBytes, cudaMemcpyDeviceToDevice));
        },
        1, 200.0);
    c.copy_gbps = 2.0 * kCopyBytes / (t.median_ms * 1e-3) / 1e9;  // read + write
  }
  {
    constexpr int kN = 8192;
    const size_t bytes = size_t{kN} * kN * sizeof(__nv_bfloat16);
    DeviceBuffer a(bytes), b(bytes), out(bytes);
    fill_uniform(a.get<__nv_bfloat16>(), int64_t{kN} * kN, 1);
    fill_uniform(b.get<__nv_bfloat16>(), int64_t{kN} * kN, 2);
    cublasHandle_t handle;
    TILLER_CUBLAS_CHECK(cublasCreate(&handle));
    const float alpha = 1.f, beta = 0.f;
    Timing t = time_it(
        [&](int) {
          TILLER_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, kN, kN, kN, &alpha,
                                           a.get(), CUDA_R_16BF, kN, b.get(), CUDA_R_16BF, kN,
                                           &beta, out.get(), CUDA_R_16BF, kN, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT));
        },
        1, 300.0);
    cublasDestroy(handle);
    c.gemm_tflops = 2.0 * kN * kN * kN / (t.median_ms * 1e-3) / 1e12;
  }
  std::printf(
      "{\"source\":\"tiller\",\"kernel\":\"ceiling\",\"shape\":\"device\",\"copy_gbps\":%.1f,"
      "\"gemm_tflops\":%.1f}\n",
      c.copy_gbps, c.gemm_tflops);
  std::fflush(stdout);
  return c;
}

enum class Bound { compute, memory };

// One JSON line: achieved rates from the FLOP and byte counts, % of the relevant ceiling.
inline void report(const std::string& kernel, const std::string& shape, const Timing& t,
                   double flops, double bytes, Bound bound, const Ceilings& c) {
  double seconds = t.median_ms * 1e-3;
  double tflops = flops / seconds / 1e12, gbps = bytes / seconds / 1e9;
  double pct =
      bound == Bound::compute ? 100.0 * tflops / c.gemm_tflops : 100.0 * gbps / c.copy_gbps;
  std::printf(
      "{\"source\":\"tiller\",\"impl\":\"tiller\",\"kernel\":\"%s\",\"shape\":\"%s\","
      "\"median_ms\":%.4f,\"min_ms\":%.4f,\"runs\":%d,\"tflops\":%.2f,\"gbps\":%.1f,"
      "\"bound\":\"%s\",\"ceiling_tflops\":%.1f,\"ceiling_gbps\":%.1f,\"pct_of_ceiling\":%.1f}\n",
      kernel.c_str(), shape.c_str(), t.median_ms, t.min_ms, t.runs, tflops, gbps,
      bound == Bound::compute ? "compute" : "memory", c.gemm_tflops, c.copy_gbps, pct);
  std::fflush(stdout);
}

inline void report_error(const std::string& kernel, const std::string& shape,
                         const std::exception& error) {
  std::string message = error.what();
  for (char& ch : message)
    if (ch == '"' || ch == '\\' || ch == '\n') ch = ' ';  // keep the line valid JSON
  std::printf("{\"source\":\"tiller\",\"kernel\":\"%s\",\"shape\":\"%s\",\"error\":\"%s\"}\n",
              kernel.c_str(), shape.c_str(), message.c_str());
  std::fflush(stdout);
}

// Runs one benchmark body and turns an exception into a JSON error line, so one failing shape
// does not hide the others.
template <typename Body>
void guarded(const std::string& kernel, const std::string& shape, Body&& body) {
  try {
    body();
  } catch (const std::exception& error) {
    report_error(kernel, shape, error);
    cudaGetLastError();  // clear a sticky launch error so later shapes still run
  }
}

// The main() of every benchmark: measures the ceilings, then body(ceilings). An error outside a
// guarded shape (no device, no driver) becomes one JSON error line and exit status 1.
template <typename Body>
int run_program(const char* program, Body&& body) {
  try {
    body(measure_ceilings());
    return 0;
  } catch (const std::exception& error) {
    report_error(program, "-", error);
    return 1;
  }
}

}  // namespace bench
