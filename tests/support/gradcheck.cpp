// Finite-difference gradient checker (see gradcheck.h).
#include "support/gradcheck.h"

#include <cmath>

namespace tiller::testing {

Tensor random_input(const Shape& shape, uint64_t seed, float std, bool requires_grad) {
  Generator gen(seed);
  Tensor t = Tensor::randn(shape, gen, 0.f, std);
  t.requires_grad_(requires_grad);
  return t;
}

namespace {
double projected(const Tensor& out, const std::vector<float>& w) {
  std::vector<float> v = out.to_vector();
  double acc = 0;
  for (size_t i = 0; i < v.size(); ++i) acc += static_cast<double>(v[i]) * w[i];
  return acc;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          std::vector<Tensor> inputs, GradcheckOptions options) {
  GradcheckResult result;
  Tensor out = f(inputs);
  Generator wgen(0x5eed);
  Tensor w = Tensor::randn(out.shape(), wgen, 0.f, 1.f, {.device = out.device()});
  std::vector<float> wv = w.to_vector();
  for (auto& x : inputs)
    if (x.requires_grad()) x.zero_grad();
  sum(mul(out.to(DType::f32), w)).backward();

  int reported = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    if (!x.grad().defined()) {
      result.ok = false;
      result.report += fmt::format("input {}: no gradient reached it\n", k);
      continue;
    }
    std::vector<float> analytic = x.grad().to_vector();
    int64_t n = x.numel();
    int64_t step = std::max<int64_t>(1, n / options.max_checks_per_input);
    for (int64_t i = 0; i < n; i += step) {
      // Perturb element i in place (x is a CPU f32 leaf; no autograd history is created).
      float* p = x.data<float>() + i;
      float original = *p;
      double up, down;
      {
        NoGradGuard no_grad;
        *p = original + options.eps;
        up = projected(f(inputs), wv);
        *p = original - options.eps;
        down = projected(f(inputs), wv);
        *p = original;
      }
      double numeric = (up - down) / (2.0 * options.eps);
      double error = std::fabs(numeric - analytic[i]);
      result.max_abs_error = std::max(result.max_abs_error, error);
      if (error > options.atol + options.rtol * std::fabs(numeric)) {
        result.ok = false;
        if (reported++ < 8)
          result.report += fmt::format("input {} element {}: analytic {:.6g} numeric {:.6g}\n", k,
                                       i, analytic[i], numeric);
      }
    }
  }
  if (result.ok) result.report = fmt::format("max abs error {:.3g}", result.max_abs_error);
  return result;
}

std::string compare(const Tensor& a, const Tensor& b, float rtol, float atol) {
  if (a.shape() != b.shape())
    return fmt::format("shapes differ: {} vs {}", shape_str(a.shape()), shape_str(b.shape()));
  std::vector<float> va = a.to_vector(), vb = b.to_vector();
  std::string message;
  int reported = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    bool bad = !(std::fabs(va[i] - vb[i]) <= atol + rtol * std::fabs(vb[i]));  // NaN fails
    if (bad && reported++ < 8)
      message += fmt::format("element {}: {:.7g} vs {:.7g}\n", i, va[i], vb[i]);
  }
  return message;
}

}  // namespace tiller::testing
