// Finite-difference gradient checks and tensor comparisons for the test suites.
//
// gradcheck(f, inputs) reduces f's output to a scalar L = sum(f(inputs) * w) with a fixed random
// w (so every output element matters and errors cannot cancel), runs backward, and compares each
// input's gradient with the central difference (L(x + eps) - L(x - eps)) / (2 eps), evaluated with
// the projection accumulated in double. The ops compute in f32, so the defaults (eps 1e-2,
// rtol 2e-2, atol 2e-3) are what f32 central differences support; tests state any change.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/ops/ops.h"

namespace tiller::testing {

struct GradcheckOptions {
  float eps = 1e-2f;
  float rtol = 2e-2f;
  float atol = 2e-3f;
  int64_t max_checks_per_input = 96;  // elements checked per input (evenly spread) when larger
};

struct GradcheckResult {
  bool ok = true;
  std::string report;  // the first mismatches, for the failure message
  double max_abs_error = 0;
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          std::vector<Tensor> inputs, GradcheckOptions options = {});

// A CPU f32 tensor of the shape filled from N(0, std) with `seed`, requiring grad.
Tensor random_input(const Shape& shape, uint64_t seed, float std = 1.f, bool requires_grad = true);

// max |a - b| / (atol + rtol |b|) <= 1, element by element; returns a message when it fails.
std::string compare(const Tensor& a, const Tensor& b, float rtol, float atol);

}  // namespace tiller::testing

// REQUIRE_GRADCHECK(f, inputs[, options]) fails with the mismatch report.
#define REQUIRE_GRADCHECK(...)                                          \
  do {                                                                  \
    auto gradcheck_result_ = ::tiller::testing::gradcheck(__VA_ARGS__); \
    INFO(gradcheck_result_.report);                                     \
    REQUIRE(gradcheck_result_.ok);                                      \
  } while (0)

#define REQUIRE_CLOSE(a, b, rtol, atol)                                     \
  do {                                                                      \
    auto compare_message_ = ::tiller::testing::compare((a), (b), rtol, atol); \
    INFO(compare_message_);                                                 \
    REQUIRE(compare_message_.empty());                                      \
  } while (0)
