// The CPU GEMM split over OpenMP threads (kernels/cpu/matmul.cpp): every transpose combination,
// row splits (tall C), column splits (wide C), batches, alpha/beta, against a double-precision
// loop at 1, 2 and 3 threads. Not bitwise across thread counts: OpenBLAS's FMA order depends
// on the block shape it is given.
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/matmul.h"
#include "support/gradcheck.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace tiller;

namespace {

// C = alpha * op(A) op(B) + beta * C per batch item, in double.
std::vector<float> reference_gemm(const kernels::GemmShape& s, const std::vector<float>& a,
                                  const std::vector<float>& b, std::vector<float> c) {
  for (int64_t i = 0; i < s.batch; ++i)
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < s.K; ++k) {
          float av = s.trans_a ? a[i * s.stride_a + k * s.M + m] : a[i * s.stride_a + m * s.K + k];
          float bv = s.trans_b ? b[i * s.stride_b + n * s.K + k] : b[i * s.stride_b + k * s.N + n];
          acc += static_cast<double>(av) * bv;
        }
        float& out = c[i * s.stride_c + m * s.N + n];
        out = static_cast<float>(s.alpha * acc + s.beta * out);
      }
  return c;
}

std::vector<float> run_gemm(const kernels::GemmShape& s, const std::vector<float>& a,
                            const std::vector<float>& b, std::vector<float> c, int threads) {
#if defined(_OPENMP)
  int previous = omp_get_max_threads();
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  kernels::gemm<kernels::Backend::cpu>(s, a.data(), b.data(), c.data(), DType::f32);
#if defined(_OPENMP)
  omp_set_num_threads(previous);
#endif
  return c;
}

}  // namespace

TEST_CASE("CPU gemm split over threads matches a double-precision loop at every thread count",
          "[matmul]") {
  struct Case {
    int64_t batch, M, N, K;
  };
  // Tall (row split), wide (column split), batched with fewer and more items than threads.
  const Case cases[] = {{1, 129, 67, 300}, {1, 5, 301, 64}, {3, 33, 40, 50}, {1, 1, 1, 7}};
  uint64_t seed = 40;
  for (const Case& shape : cases)
    for (bool trans_a : {false, true})
      for (bool trans_b : {false, true}) {
        kernels::GemmShape s{.batch = shape.batch,
                             .M = shape.M,
                             .N = shape.N,
                             .K = shape.K,
                             .trans_a = trans_a,
                             .trans_b = trans_b,
                             .stride_a = shape.M * shape.K,
                             .stride_b = shape.K * shape.N,
                             .stride_c = shape.M * shape.N,
                             .alpha = 0.5f,
                             .beta = 2.f};
        auto a = testing::random_input({s.batch * s.stride_a}, ++seed, 1.f, false).to_vector();
        auto b = testing::random_input({s.batch * s.stride_b}, ++seed, 1.f, false).to_vector();
        auto c = testing::random_input({s.batch * s.stride_c}, ++seed, 1.f, false).to_vector();
        INFO("batch " << s.batch << " M " << s.M << " N " << s.N << " K " << s.K << " trans_a "
                      << trans_a << " trans_b " << trans_b);
        auto expected = reference_gemm(s, a, b, c);
        for (int threads : {1, 2, 3}) {
          auto got = run_gemm(s, a, b, c, threads);
          for (size_t i = 0; i < expected.size(); ++i)
            REQUIRE(got[i] == Approx(expected[i]).margin(1e-4).epsilon(1e-4));
        }
      }
}
