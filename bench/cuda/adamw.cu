// Benchmark: one fused multi-tensor AdamW step (kernels/adamw.h) over GPT-2 small's 124M
// parameters in its real 148 tensors (bench/torch_bench.py builds the same list).
//
// Mixed precision as in training: f32 master weights and moments, bf16 model weights and
// gradients. Bytes per parameter: read master 4 + grad 2 + m 4 + v 4, write master 4 + m 4 +
// v 4 + bf16 param 2 = 28; PyTorch's fused AdamW on f32 params and grads also moves 28 bytes per
// parameter, so GB/s compares like with like. Memory-bound: % of the copy ceiling.
#include <string>

#include "bench_common.cuh"
#include "kernels/adamw.h"

namespace {

using tiller::kernels::AdamWTensor;
using tiller::kernels::Backend;

// GPT-2 small (n_layer 12, n_embd 768, vocab 50304, context 1024), in state_dict order.
std::vector<int64_t> gpt2_small_sizes() {
  constexpr int64_t C = 768, V = 50304, T = 1024;
  std::vector<int64_t> sizes = {V * C, T * C};
  for (int layer = 0; layer < 12; ++layer) {
    for (int64_t n : {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C})
      sizes.push_back(n);
  }
  sizes.push_back(C);
  sizes.push_back(C);
  return sizes;
}

}  // namespace

int main() {
  return bench::run_program("bench_cuda_adamw", [](const bench::Ceilings& ceilings) {
    const std::vector<int64_t> sizes = gpt2_small_sizes();
    int64_t total = 0;
    for (int64_t n : sizes) total += n;
    const std::string shape =
        "gpt2-124M n=" + std::to_string(total) + " tensors=" + std::to_string(sizes.size());
    bench::guarded("adamw_step", shape, [&] {
      // One buffer per role, sliced per tensor: 2.2 GB in all, far beyond L2, so no rotation.
      bench::DeviceBuffer master(total * 4), m(total * 4), v(total * 4), param(total * 2),
          grad(total * 2);
      bench::fill_uniform(master.get<float>(), total, 1);
      bench::fill_uniform(grad.get<__nv_bfloat16>(), total, 2, 1e-2f);
      TILLER_CUDA_CHECK(cudaMemset(m.get(), 0, total * 4));
      TILLER_CUDA_CHECK(cudaMemset(v.get(), 0, total * 4));
      std::vector<AdamWTensor> tensors;
      int64_t offset = 0;
      for (int64_t n : sizes) {
        AdamWTensor t;
        t.master = master.get<float>() + offset;
        t.param = param.get<__nv_bfloat16>() + offset;
        t.grad = grad.get<__nv_bfloat16>() + offset;
        t.m = m.get<float>() + offset;
        t.v = v.get<float>() + offset;
        t.n = n;
        t.weight_decay = 0.1f;
        t.param_dtype = tiller::DType::bf16;
        t.grad_dtype = tiller::DType::bf16;
        tensors.push_back(t);
        offset += n;
      }
      tiller::kernels::AdamWHyper hyper;
      hyper.lr = 6e-4f;
      hyper.beta2 = 0.95f;
      bench::Timing t = bench::time_it(
          [&](int) {
            tiller::kernels::adamw_step<Backend::cuda>(tensors, hyper);
            ++hyper.step;
          },
          1);
      bench::report("adamw_step", shape, t, 12.0 * total, 28.0 * total, bench::Bound::memory,
                    ceilings);
    });
  });
}
