// Forward + backward of a small GPT-style block stack on the CPU backend, tokens/s.
//
// Each block: x = x + proj(attention(qkv(layernorm(x)))); x = x + fc2(gelu(fc1(layernorm(x)))).
// Built from the public ops only, so it measures what a user's own model would get.
// FLOPs per token ~ 6 * params (matmuls, fwd+bwd) + attention 12 * L * T * C (causal halves it).
#include <cstdio>

#include "bench_util.h"
#include "core/ops/ops.h"
#include "kernels/cpu/parallel.h"

using namespace tiller;

namespace {

struct Block {
  Tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  std::vector<Tensor*> all() {
    return {&ln1_w, &ln1_b, &qkv_w, &qkv_b, &proj_w, &proj_b,
            &ln2_w, &ln2_b, &fc1_w, &fc1_b, &fc2_w, &fc2_b};
  }
};

Block make_block(int64_t C, Generator& gen) {
  auto param = [&](Shape shape, float std) {
    Tensor t = std > 0 ? Tensor::randn(shape, gen, 0.f, std) : Tensor::ones(shape);
    return t.requires_grad_();
  };
  auto zeros = [&](Shape shape) { return Tensor::zeros(shape).requires_grad_(); };
  return {param({C}, 0),         zeros({C}),    param({3 * C, C}, 0.02f), zeros({3 * C}),
          param({C, C}, 0.02f),  zeros({C}),    param({C}, 0),            zeros({C}),
          param({4 * C, C}, 0.02f), zeros({4 * C}), param({C, 4 * C}, 0.02f), zeros({C})};
}

Tensor forward(std::vector<Block>& blocks, Tensor x, int64_t H) {
  int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / H;
  for (Block& b : blocks) {
    Tensor qkv = linear(layernorm(x, b.ln1_w, b.ln1_b), b.qkv_w, b.qkv_b);  // (B, T, 3C)
    Tensor heads = permute(qkv.reshape({B, T, 3, H, D}), {2, 0, 3, 1, 4});  // (3, B, H, T, D)
    Tensor q = squeeze(slice(heads, 0, 0, 1), 0);
    Tensor k = squeeze(slice(heads, 0, 1, 2), 0);
    Tensor v = squeeze(slice(heads, 0, 2, 3), 0);
    Tensor y = permute(attention(q, k, v), {0, 2, 1, 3}).reshape({B, T, C});
    x = add(x, linear(y, b.proj_w, b.proj_b));
    Tensor h = gelu(linear(layernorm(x, b.ln2_w, b.ln2_b), b.fc1_w, b.fc1_b));
    x = add(x, linear(h, b.fc2_w, b.fc2_b));
  }
  return x;
}

}  // namespace

int main() {
  std::printf("CPU block stack forward+backward, f32, %d threads\n\n", kernels::cpu::max_threads());
  std::printf("| layers | C | heads | B x T | params | fwd+bwd ms | tokens/s | GFLOP/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const int64_t configs[][5] = {{4, 128, 4, 8, 128}, {4, 256, 4, 8, 256}, {6, 384, 6, 4, 256}};
  for (auto& c : configs) {
    int64_t L = c[0], C = c[1], H = c[2], B = c[3], T = c[4];
    Generator gen(1);
    std::vector<Block> blocks;
    for (int64_t i = 0; i < L; ++i) blocks.push_back(make_block(C, gen));
    Tensor x = Tensor::randn({B, T, C}, gen);
    int64_t params = 0;
    for (Block& b : blocks)
      for (Tensor* p : b.all()) params += p->numel();
    double seconds = bench::time_median([&] {
      Tensor out = forward(blocks, x, H);
      sum(mul(out, out)).backward();
      for (Block& b : blocks)
        for (Tensor* p : b.all()) p->zero_grad();
    }, 1, 5);
    double tokens = static_cast<double>(B * T);
    double flops = 6.0 * params * tokens + 6.0 * L * B * T * T * C;  // causal attention ~ half
    std::printf("| %ld | %ld | %ld | %ld x %ld | %.2fM | %.1f | %.0f | %.1f |\n", L, C, H, B, T,
                params / 1e6, seconds * 1e3, tokens / seconds, flops / seconds / 1e9);
  }
  return 0;
}
