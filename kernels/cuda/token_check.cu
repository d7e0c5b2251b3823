// CUDA token-id range check (kernels/token_check.h): one block scans the ids (N is a batch's
// tokens, so a single block's grid-stride loop costs microseconds), records the first bad id in
// the device's fault record and, when asked, writes max(1, real-token count) as the divisor.
#include "kernels/cuda/common.cuh"
#include "kernels/token_check.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kThreads = 1024;

__global__ void check_token_ids_kernel(const int32_t* ids, int64_t N, int64_t V, bool has_allowed,
                                       int32_t allowed, float* divisor, TokenFault* fault,
                                       const char* op, const char* name) {
  __shared__ int64_t partial[kThreads / 32];
  int64_t real_tokens = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const int32_t id = ids[i];
    if (has_allowed && id == allowed) continue;
    if (id >= 0 && id < V) {
      ++real_tokens;
    } else if (atomicCAS(&fault->flag, 0, 1) == 0) {
      fault->value = id;
      fault->index = i;
      fault->V = V;
      fault->op = op;
      fault->name = name;
    }
  }
  if (divisor == nullptr) return;
  for (int offset = 16; offset > 0; offset /= 2)
    real_tokens += __shfl_xor_sync(0xffffffffu, real_tokens, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = real_tokens;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
    *divisor = static_cast<float>(total > 0 ? total : 1);
  }
}

}  // namespace

template <>
void check_token_ids<Backend::cuda>(const int32_t* ids, int64_t N, int64_t V,
                                    const int32_t* allowed, float* divisor, TokenSite site) {
  // Launched for N = 0 too: the divisor is then 1.
  check_token_ids_kernel<<<1, kThreads>>>(ids, N, V, allowed != nullptr,
                                          allowed != nullptr ? *allowed : 0, divisor,
                                          token_fault_record(), site.op, site.name);
  TILLER_CUDA_CHECK_LAUNCH();
}

}  // namespace tiller::kernels
