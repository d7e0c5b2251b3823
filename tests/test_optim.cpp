// AdamW, learning-rate schedules and gradient clipping against hand-computed numbers.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "kernels/adamw.h"
#include "kernels/dtype.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "support/gradcheck.h"

using namespace tiller;
using namespace tiller::optim;

namespace {

Tensor leaf(const std::vector<float>& values) {
  return Tensor::from_vector(values, {static_cast<int64_t>(values.size())}, TensorOptions{}.grad());
}

void give_grad(const Tensor& param, const std::vector<float>& grad) {
  param.set_grad(Tensor::from_vector(grad, param.shape()));
}

}  // namespace

// ---- AdamW -------------------------------------------------------------------------------------

TEST_CASE("AdamW's first step moves each weight by lr against the sign of its gradient",
          "[optim]") {
  // m_hat = g and v_hat = g^2 after one step, so the update is lr * g / (|g| + eps).
  Tensor w = leaf({1.f, -2.f, 0.5f});
  AdamW opt({{"w", w, false}}, {.lr = 0.1f, .weight_decay = 0.f});
  give_grad(w, {0.5f, -3.f, 1e-3f});
  opt.step();
  auto v = w.to_vector();
  REQUIRE(v[0] == Approx(0.9f).epsilon(1e-6));
  REQUIRE(v[1] == Approx(-1.9f).epsilon(1e-6));
  REQUIRE(v[2] == Approx(0.4f).epsilon(1e-4));  // eps = 1e-8 is 1e-5 of |g| here
  REQUIRE(opt.step_count() == 1);
}

TEST_CASE("AdamW's second step matches the bias-corrected moments worked by hand", "[optim]") {
  // Step 1, g = 0.5: m = 0.05, v = 2.5e-4, w = 1 - 0.1 = 0.9.
  // Step 2, g = -0.25: m = 0.9*0.05 + 0.1*(-0.25) = 0.02; v = 0.999*2.5e-4 + 0.001*0.0625
  //   = 3.1225e-4; m_hat = 0.02 / 0.19 = 0.1052632; v_hat = 3.1225e-4 / 0.001999 = 0.1562031;
  //   w = 0.9 - 0.1 * 0.1052632 / 0.3952254 = 0.8733666.
  Tensor w = leaf({1.f});
  AdamW opt({{"w", w, false}}, {.lr = 0.1f, .weight_decay = 0.f});
  give_grad(w, {0.5f});
  opt.step();
  give_grad(w, {-0.25f});
  opt.step();
  REQUIRE(w.item() == Approx(0.8733666f).epsilon(1e-6));
  AdamWState state = opt.state();
  REQUIRE(state.step == 2);
  REQUIRE(state.tensors.at("w.exp_avg").item() == Approx(0.02f).epsilon(1e-6));
  // 1 - 0.999f is 1.3e-5 away from 0.001 in f32, which bounds how closely v can match.
  REQUIRE(state.tensors.at("w.exp_avg_sq").item() == Approx(3.1225e-4f).epsilon(3e-5));
}

TEST_CASE("AdamW decays only the decaying group, multiplicatively by 1 - lr * wd", "[optim]") {
  Tensor matrix = leaf({2.f, -4.f});
  Tensor bias = leaf({2.f, -4.f});
  AdamW opt({{"matrix", matrix, true}, {"bias", bias, false}}, {.lr = 0.5f, .weight_decay = 0.1f});
  give_grad(matrix, {0.f, 0.f});  // zero gradient: only the decay moves the weights
  give_grad(bias, {0.f, 0.f});
  opt.step();
  REQUIRE(matrix.to_vector() == std::vector<float>{2.f * 0.95f, -4.f * 0.95f});
  REQUIRE(bias.to_vector() == std::vector<float>{2.f, -4.f});
}

TEST_CASE("explicit parameter groups override the decay flags", "[optim]") {
  Tensor embedding = leaf({1.f});
  ParamGroup decayed{.params = {{"wte.weight", embedding, false}}, .weight_decay = 0.2f};
  AdamW opt(std::vector<ParamGroup>{decayed}, {.lr = 1.f, .weight_decay = 0.f});
  give_grad(embedding, {0.f});
  opt.step();
  REQUIRE(embedding.item() == Approx(0.8f));
  auto groups = default_param_groups(
      {{"a", leaf({1.f}), true}, {"b", leaf({1.f}), false}, {"c", leaf({1.f}), true}}, 0.1f);
  REQUIRE(groups.size() == 2);
  REQUIRE(groups[0].params.size() == 2);
  REQUIRE(groups[0].weight_decay == 0.1f);
  REQUIRE(groups[1].params[0].name == "b");
  REQUIRE(groups[1].weight_decay == 0.f);
}

TEST_CASE("AdamW skips parameters without a gradient and zero_grad drops gradients", "[optim]") {
  Tensor used = leaf({1.f});
  Tensor unused = leaf({1.f});
  AdamW opt({{"used", used, true}, {"unused", unused, true}}, {.lr = 0.1f, .weight_decay = 0.5f});
  give_grad(used, {1.f});
  opt.step();
  REQUIRE(unused.item() == 1.f);  // not even decayed
  REQUIRE(used.item() < 0.9f);
  REQUIRE(opt.state().tensors.at("unused.exp_avg").item() == 0.f);
  opt.zero_grad();
  REQUIRE_FALSE(used.grad().defined());
}

TEST_CASE("grad_scale multiplies the gradient before the moments see it", "[optim]") {
  Tensor a = leaf({1.f, 2.f});
  Tensor b = leaf({1.f, 2.f});
  AdamW scaled({{"p", a, false}}, {.lr = 0.1f});
  AdamW halved({{"p", b, false}}, {.lr = 0.1f});
  give_grad(a, {0.8f, -0.6f});
  give_grad(b, {0.4f, -0.3f});
  scaled.step(0.5f);
  halved.step();
  REQUIRE(a.to_vector() == b.to_vector());
  REQUIRE(scaled.state().tensors.at("p.exp_avg_sq").to_vector() ==
          halved.state().tensors.at("p.exp_avg_sq").to_vector());
}

TEST_CASE("AdamW rejects duplicate parameters and bad hyperparameters", "[optim]") {
  Tensor w = leaf({1.f});
  REQUIRE_THROWS_WITH(AdamW({{"a", w, true}, {"b", w, true}}),
                      Catch::Contains("AdamW: parameter 'b' is also listed as 'a'"));
  REQUIRE_THROWS_WITH(AdamW({{"a", w, true}}, {.beta1 = 1.f}), Catch::Contains("AdamW: betas"));
  REQUIRE_THROWS_WITH(AdamW({{"a", Tensor::from_ints({1}, {1}), true}}),
                      Catch::Contains("only f32 and bf16"));
}

TEST_CASE("the multi-tensor CPU AdamW step equals the per-element formula in double", "[optim]") {
  // Three f32 tensors whose sizes straddle the kernel's 65536-element chunks (so one chunk
  // spans tensor ends) in a single call, two steps, against AdamW written out in double. Then the same tensors updated one call each must give
  // the same bits: the chunking of the shared index space does not touch the arithmetic.
  const std::vector<int64_t> sizes = {70001, 3, 65541};
  const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, decay = 0.1f;
  const float grad_scale = 0.5f;
  struct State {
    std::vector<float> w, g, m, v;
  };
  auto make_states = [&] {
    std::vector<State> states;
    uint64_t seed = 90;
    for (int64_t n : sizes) {
      State s{testing::random_input({n}, ++seed, 1.f, false).to_vector(),
              testing::random_input({n}, ++seed, 1.f, false).to_vector(),
              std::vector<float>(n, 0.f), std::vector<float>(n, 0.f)};
      states.push_back(std::move(s));
    }
    return states;
  };
  auto step = [&](std::vector<State>& states, int64_t t, bool one_call) {
    std::vector<kernels::AdamWTensor> tensors;
    for (State& s : states)
      tensors.push_back({.master = s.w.data(),
                         .param = s.w.data(),
                         .grad = s.g.data(),
                         .m = s.m.data(),
                         .v = s.v.data(),
                         .n = static_cast<int64_t>(s.w.size()),
                         .weight_decay = decay});
    kernels::AdamWHyper hyper{
        .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps, .step = t, .grad_scale = grad_scale};
    if (one_call) {
      kernels::adamw_step<kernels::Backend::cpu>(tensors, hyper);
    } else {
      for (const auto& x : tensors) kernels::adamw_step<kernels::Backend::cpu>({x}, hyper);
    }
  };
  std::vector<State> fused = make_states(), separate = make_states();
  std::vector<State> reference = make_states();
  std::vector<std::vector<double>> w(sizes.size()), m(sizes.size()), v(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    w[i].assign(reference[i].w.begin(), reference[i].w.end());
    m[i].assign(sizes[i], 0.0);
    v[i].assign(sizes[i], 0.0);
  }
  for (int64_t t = 1; t <= 2; ++t) {
    step(fused, t, true);
    step(separate, t, false);
    for (size_t i = 0; i < sizes.size(); ++i)
      for (int64_t j = 0; j < sizes[i]; ++j) {
        double g = static_cast<double>(reference[i].g[j]) * grad_scale;
        m[i][j] = beta1 * m[i][j] + (1 - beta1) * g;
        v[i][j] = beta2 * v[i][j] + (1 - beta2) * g * g;
        double m_hat = m[i][j] / (1 - std::pow(beta1, t));
        double v_hat = v[i][j] / (1 - std::pow(beta2, t));
        w[i][j] = w[i][j] * (1 - lr * decay) - lr * m_hat / (std::sqrt(v_hat) + eps);
      }
  }
  int64_t checked = 0;
  for (size_t i = 0; i < sizes.size(); ++i)
    for (int64_t j = 0; j < sizes[i]; ++j) {
      // A step moves w by ~lr = 1e-2; f32 rounding of |w| <= ~4 is ~5e-7.
      REQUIRE(std::fabs(fused[i].w[j] - w[i][j]) < 2e-6);
      REQUIRE(std::fabs(fused[i].m[j] - m[i][j]) < 1e-6);
      REQUIRE(fused[i].w[j] == separate[i].w[j]);
      REQUIRE(fused[i].m[j] == separate[i].m[j]);
      REQUIRE(fused[i].v[j] == separate[i].v[j]);
      ++checked;
    }
  REQUIRE(checked == 70001 + 3 + 65541);
}

TEST_CASE("a bf16 gradient beside f32 ones in one CPU AdamW call takes the same update",
          "[optim]") {
  // Gradients exactly representable in bf16, so both paths see the same numbers.
  const int64_t n = 70000;
  std::vector<float> grad(n), w0(n);
  for (int64_t i = 0; i < n; ++i) {
    grad[i] = static_cast<float>((i % 17) - 8) * 0.125f;
    w0[i] = static_cast<float>((i % 5) - 2) * 0.5f;
  }
  std::vector<uint16_t> grad_bf16(n);
  for (int64_t i = 0; i < n; ++i) grad_bf16[i] = float_to_bf16(grad[i]);
  std::vector<float> w_a = w0, m_a(n), v_a(n), w_b = w0, m_b(n), v_b(n);
  kernels::AdamWHyper hyper{.lr = 1e-2f, .beta2 = 0.95f, .step = 1};
  kernels::adamw_step<kernels::Backend::cpu>({{.master = w_a.data(),
                                               .param = w_a.data(),
                                               .grad = grad.data(),
                                               .m = m_a.data(),
                                               .v = v_a.data(),
                                               .n = n,
                                               .weight_decay = 0.1f},
                                              {.master = w_b.data(),
                                               .param = w_b.data(),
                                               .grad = grad_bf16.data(),
                                               .m = m_b.data(),
                                               .v = v_b.data(),
                                               .n = n,
                                               .weight_decay = 0.1f,
                                               .grad_dtype = DType::bf16}},
                                             hyper);
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(w_a[i] == Approx(w_b[i]).margin(1e-6));  // the vector path may contract an FMA
    REQUIRE(m_a[i] == Approx(m_b[i]).margin(1e-7));
  }
  REQUIRE(w_a[1] != w0[1]);  // it moved
}

TEST_CASE("bf16 parameters keep an f32 master and are stochastically rounded", "[optim]") {
  // w = 1 (exact in bf16), g = 1, lr = 1e-3: master = 0.999 after one step. The bf16 neighbours
  // are 0.99609375 and 1.0; round-to-nearest would always give 1.0 and lose the update, while
  // stochastic rounding picks 0.99609375 with probability 0.001 / 2^-8 = 0.256, so the mean stays
  // at the master value.
  const int64_t n = 20000;
  Tensor w = Tensor::ones({n}, {.dtype = DType::bf16}).requires_grad_();
  AdamW opt({{"w", w, false}}, {.lr = 1e-3f, .weight_decay = 0.f, .seed = 7});
  w.set_grad(Tensor::ones({n}, {.dtype = DType::bf16}));
  opt.step();
  REQUIRE(w.dtype() == DType::bf16);
  Tensor master = opt.state().tensors.at("w.master");
  REQUIRE(master.dtype() == DType::f32);
  REQUIRE(master.to_vector()[0] == Approx(0.999f).epsilon(1e-6));
  auto rounded = w.to_vector();
  double mean = 0;
  int64_t down = 0;
  for (float x : rounded) {
    REQUIRE((x == 1.f || x == 0.99609375f));
    down += x < 1.f;
    mean += x;
  }
  mean /= n;
  REQUIRE(std::fabs(mean - 0.999) < 1e-4);  // ~6 standard errors
  REQUIRE(down > n / 5);
  REQUIRE(down < n / 3);
}

TEST_CASE("restoring AdamW state reproduces the following steps bit for bit", "[optim]") {
  auto grads_at = [](int step, const Shape& shape) {
    return testing::random_input(shape, 100 + step, 1.f, false);
  };
  auto run = [&](std::vector<Tensor>& params, AdamW& opt, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (size_t i = 0; i < params.size(); ++i) {
        Tensor g = grads_at(s * 10 + static_cast<int>(i), params[i].shape());
        params[i].set_grad(g.to(params[i].dtype()));
      }
      opt.step();
    }
  };
  AdamWOptions options{.lr = 3e-3f, .weight_decay = 0.1f, .seed = 11};
  std::vector<Tensor> params{testing::random_input({5, 3}, 1),
                             testing::random_input({7}, 2).detach().to(DType::bf16)};
  params[1].requires_grad_();
  AdamW opt({{"w", params[0], true}, {"h", params[1], false}}, options);
  run(params, opt, 0, 3);
  AdamWState saved = opt.state();
  std::vector<Tensor> resumed{params[0].clone().requires_grad_(),
                              params[1].clone().requires_grad_()};
  run(params, opt, 3, 6);

  AdamW fresh({{"w", resumed[0], true}, {"h", resumed[1], false}}, options);
  fresh.load_state(saved);
  REQUIRE(fresh.step_count() == 3);
  run(resumed, fresh, 3, 6);
  REQUIRE(resumed[0].to_vector() == params[0].to_vector());
  REQUIRE(resumed[1].to_vector() == params[1].to_vector());
  REQUIRE(fresh.state().tensors.at("h.master").to_vector() ==
          opt.state().tensors.at("h.master").to_vector());

  AdamWState wrong = saved;
  wrong.tensors.erase("w.exp_avg");
  REQUIRE_THROWS_WITH(fresh.load_state(wrong), Catch::Contains("missing 'w.exp_avg'"));
}

// ---- schedules ---------------------------------------------------------------------------------

TEST_CASE("warmup rises linearly and reaches the peak on its last step", "[optim]") {
  LrSchedule s{.kind = LrSchedule::Kind::constant, .peak_lr = 1.f, .warmup_steps = 4};
  REQUIRE(s.lr(0) == Approx(0.25f));
  REQUIRE(s.lr(1) == Approx(0.5f));
  REQUIRE(s.lr(3) == Approx(1.f));
  REQUIRE(s.lr(1000000) == Approx(1.f));
}

TEST_CASE("cosine and linear decay from the peak to min_lr over total_steps", "[optim]") {
  LrSchedule cosine{.kind = LrSchedule::Kind::cosine,
                    .peak_lr = 1.f,
                    .min_lr = 0.1f,
                    .warmup_steps = 10,
                    .total_steps = 110};
  LrSchedule linear = cosine;
  linear.kind = LrSchedule::Kind::linear;
  REQUIRE(cosine.lr(0) == Approx(0.1f));
  REQUIRE(cosine.lr(10) == Approx(1.f));
  REQUIRE(cosine.lr(35) == Approx(0.1f + 0.45f * (1.f + std::cos(M_PI / 4))));  // a quarter in
  REQUIRE(cosine.lr(60) == Approx(0.55f));                                      // halfway
  REQUIRE(cosine.lr(110) == Approx(0.1f));
  REQUIRE(cosine.lr(500) == Approx(0.1f));
  REQUIRE(linear.lr(35) == Approx(0.775f));
  REQUIRE(linear.lr(60) == Approx(0.55f));
  REQUIRE(linear.lr(109) == Approx(0.109f));
}

TEST_CASE("warmup-stable-decay holds the peak until the final decay_steps", "[optim]") {
  LrSchedule wsd{.kind = LrSchedule::Kind::wsd,
                 .peak_lr = 1.f,
                 .min_lr = 0.1f,
                 .warmup_steps = 10,
                 .total_steps = 110,
                 .decay_steps = 20};
  REQUIRE(wsd.lr(4) == Approx(0.5f));
  REQUIRE(wsd.lr(50) == Approx(1.f));
  REQUIRE(wsd.lr(90) == Approx(1.f));
  REQUIRE(wsd.lr(100) == Approx(0.55f));
  REQUIRE(wsd.lr(110) == Approx(0.1f));
  REQUIRE(parse_schedule_kind("wsd") == LrSchedule::Kind::wsd);
}

TEST_CASE("inconsistent schedules are rejected with the offending numbers", "[optim]") {
  LrSchedule short_run{.kind = LrSchedule::Kind::cosine, .warmup_steps = 10, .total_steps = 10};
  REQUIRE_THROWS_WITH(short_run.lr(0), Catch::Contains("total_steps (10) must exceed"));
  LrSchedule no_decay{.kind = LrSchedule::Kind::wsd, .total_steps = 10, .decay_steps = 0};
  REQUIRE_THROWS_WITH(no_decay.lr(0), Catch::Contains("wsd decay_steps (0)"));
  REQUIRE_THROWS_WITH(parse_schedule_kind("step"), Catch::Contains("unknown schedule 'step'"));
}

// ---- clipping ----------------------------------------------------------------------------------

TEST_CASE("the global gradient norm covers every parameter that has a gradient", "[optim]") {
  Tensor a = leaf({3.f, 0.f});
  Tensor b = leaf({0.f, 4.f, 0.f});
  Tensor no_grad = leaf({100.f});
  ParameterList params{{"a", a, true}, {"b", b, true}, {"c", no_grad, true}};
  REQUIRE(global_grad_norm(params) == 0.f);
  give_grad(a, {3.f, 0.f});
  give_grad(b, {0.f, 4.f, 0.f});
  REQUIRE(global_grad_norm(params) == Approx(5.f));
}

TEST_CASE("clip_grad_norm rescales gradients to max_norm only when they exceed it", "[optim]") {
  Tensor a = leaf({0.f, 0.f});
  Tensor b = leaf({0.f});
  ParameterList params{{"a", a, true}, {"b", b, true}};
  give_grad(a, {3.f, 0.f});
  give_grad(b, {-4.f});
  GradNorm kept = clip_grad_norm(params, 10.f);
  REQUIRE(kept.norm == Approx(5.f));
  REQUIRE(kept.scale == 1.f);
  REQUIRE(a.grad().to_vector() == std::vector<float>{3.f, 0.f});

  GradNorm clipped = clip_grad_norm(params, 1.f);
  REQUIRE(clipped.finite);
  REQUIRE(clipped.norm == Approx(5.f));
  REQUIRE(clipped.scale == Approx(0.2f));
  REQUIRE(a.grad().to_vector()[0] == Approx(0.6f));
  REQUIRE(b.grad().item() == Approx(-0.8f));
  REQUIRE(global_grad_norm(params) == Approx(1.f).epsilon(1e-5));
}

TEST_CASE("a non-finite gradient norm is reported and the gradients are left alone", "[optim]") {
  Tensor a = leaf({0.f, 0.f});
  ParameterList params{{"a", a, true}};
  give_grad(a, {std::nanf(""), 1.f});
  GradNorm nan_norm = clip_grad_norm(params, 1.f);
  REQUIRE_FALSE(nan_norm.finite);
  REQUIRE(nan_norm.scale == 1.f);
  REQUIRE(a.grad().to_vector()[1] == 1.f);
  give_grad(a, {INFINITY, 1.f});
  REQUIRE_FALSE(clip_grad_norm(params, 1.f).finite);
  REQUIRE_THROWS_WITH(clip_factor(1.f, 0.f), Catch::Contains("max_norm must be positive"));
}
