// attention: forward against a reference built from matmul + softmax with an additive mask,
// finite-difference gradients, packed documents, padding, KV-cache decoding, fully masked rows,
// thread-count independence and the op's input validation.
//
// The reference re-states the visibility rule of kernels/attention.h in its plainest form
// (`sees` below) and applies it as -1e9 added to the scores, so it shares no code with the kernel.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "core/ops/ops.h"
#include "kernels/attention.h"
#include "support/gradcheck.h"

using namespace tiller;

namespace {

struct Layout {
  int64_t B, Hq, Hkv, Tq, Tk, D;
};

struct Inputs {
  Tensor q, k, v;
};

Inputs random_qkv(const Layout& l, uint64_t seed) {
  return {testing::random_input({l.B, l.Hq, l.Tq, l.D}, seed),
          testing::random_input({l.B, l.Hkv, l.Tk, l.D}, seed + 1),
          testing::random_input({l.B, l.Hkv, l.Tk, l.D}, seed + 2)};
}

// The rule of kernels/attention.h for query i (absolute position Tk - Tq + i) and key j.
bool sees(const Layout& l, const AttentionOptions& o, int64_t b, int64_t i, int64_t j) {
  int64_t query_pos = l.Tk - l.Tq + i;
  if (o.causal && j > query_pos) return false;
  if (o.key_padding_mask.defined() && o.key_padding_mask.to_int_vector()[b * l.Tk + j] == 0)
    return false;
  if (o.document_ids.defined()) {
    auto docs = o.document_ids.to_int_vector();
    if (docs[b * l.Tk + j] != docs[b * l.Tk + query_pos]) return false;
  }
  return true;
}

// Repeats each kv head Hq / Hkv times along dim 1, as grouped-query attention reads them.
Tensor repeat_kv_heads(const Tensor& kv, int64_t Hq) {
  int64_t group = Hq / kv.size(1);
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < Hq; ++h) heads.push_back(slice(kv, 1, h / group, h / group + 1));
  return concat(heads, 1);
}

Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                           const AttentionOptions& o) {
  Layout l{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
  std::vector<float> additive(l.B * l.Tq * l.Tk), row_has_key(l.B * l.Tq, 0.f);
  for (int64_t b = 0; b < l.B; ++b)
    for (int64_t i = 0; i < l.Tq; ++i)
      for (int64_t j = 0; j < l.Tk; ++j) {
        bool visible = sees(l, o, b, i, j);
        additive[(b * l.Tq + i) * l.Tk + j] = visible ? 0.f : -1e9f;
        if (visible) row_has_key[b * l.Tq + i] = 1.f;
      }
  float scale = o.scale != 0.f ? o.scale : 1.f / std::sqrt(static_cast<float>(l.D));
  Tensor scores = matmul(q, repeat_kv_heads(k, l.Hq), false, true) * scale +
                  Tensor::from_vector(additive, {l.B, 1, l.Tq, l.Tk});
  Tensor probs = softmax(scores) * Tensor::from_vector(row_has_key, {l.B, 1, l.Tq, 1});
  return matmul(probs, repeat_kv_heads(v, l.Hq));
}

// Designated initializers would leave the mask members unnamed (-Wmissing-field-initializers).
AttentionOptions options(bool causal, float scale = 0.f) {
  AttentionOptions o;
  o.causal = causal;
  o.scale = scale;
  return o;
}

AttentionOptions with_padding_and_documents(bool causal) {
  AttentionOptions o = options(causal);
  // Batch row 0: right padding; row 1: left padding. Two and three documents.
  o.key_padding_mask = Tensor::from_ints({1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1}, {2, 7});
  o.document_ids = Tensor::from_ints({0, 0, 0, 1, 1, 2, 2, 4, 4, 4, 4, 6, 6, 6}, {2, 7});
  return o;
}

Tensor attend(const Inputs& x, const AttentionOptions& o) {
  return attention(x.q, x.k, x.v, o);
}

}  // namespace

TEST_CASE("attention matches matmul + softmax with an additive mask", "[attention]") {
  struct Case {
    const char* name;
    Layout layout;
    AttentionOptions options;
  };
  AttentionOptions non_causal = options(false);
  AttentionOptions custom_scale = options(true, 0.7f);
  std::vector<Case> cases = {
      {"causal", {2, 3, 3, 7, 7, 6}, {}},
      {"non-causal", {2, 3, 3, 7, 7, 6}, non_causal},
      {"grouped query 4/2", {2, 4, 2, 7, 7, 6}, {}},
      {"multi-query 4/1", {2, 4, 1, 7, 7, 6}, {}},
      {"explicit scale", {1, 2, 2, 5, 5, 4}, custom_scale},
      {"padding + documents, causal", {2, 4, 2, 7, 7, 6}, with_padding_and_documents(true)},
      {"padding + documents, non-causal", {2, 4, 2, 7, 7, 6}, with_padding_and_documents(false)},
      {"queries at the end of the keys", {2, 4, 2, 3, 7, 5}, with_padding_and_documents(true)},
      {"cross attention Tq > Tk", {1, 2, 1, 9, 4, 3}, non_causal},
      {"long enough to run threaded", {2, 4, 2, 64, 64, 32}, {}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Inputs x = random_qkv(c.layout, 11);
    Tensor expected = reference_attention(x.q, x.k, x.v, c.options);
    REQUIRE_CLOSE(attend(x, c.options), expected, 1e-4f, 1e-5f);
  }
}

TEST_CASE("attention gradients equal those of the matmul + softmax reference", "[attention]") {
  // Tighter than finite differences: catches small systematic errors (a biased lse, say).
  Layout l{2, 4, 2, 5, 7, 6};
  for (const AttentionOptions& o :
       {options(true), options(false), with_padding_and_documents(true)}) {
    INFO("causal " << o.causal << ", masks " << o.document_ids.defined());
    Inputs x = random_qkv(l, 15);
    Inputs ref{x.q.detach().requires_grad_(), x.k.detach().requires_grad_(),
               x.v.detach().requires_grad_()};
    Tensor weights = testing::random_input({2, 4, 5, 6}, 17, 1.f, false);
    sum(attend(x, o) * weights).backward();
    sum(reference_attention(ref.q, ref.k, ref.v, o) * weights).backward();
    REQUIRE_CLOSE(x.q.grad(), ref.q.grad(), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(x.k.grad(), ref.k.grad(), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(x.v.grad(), ref.v.grad(), 1e-4f, 1e-5f);
  }
}

TEST_CASE("attention gradients match finite differences for q, k and v", "[attention]") {
  struct Case {
    const char* name;
    Layout layout;
    AttentionOptions options;
  };
  AttentionOptions non_causal = options(false);
  AttentionOptions padded = options(true);
  padded.key_padding_mask = Tensor::from_ints({1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1}, {2, 7});
  AttentionOptions documents = options(true);
  documents.document_ids = Tensor::from_ints({0, 0, 0, 1, 1, 1, 1, 3, 3, 5, 5, 5, 5, 5}, {2, 7});
  std::vector<Case> cases = {
      {"causal", {2, 2, 2, 7, 7, 6}, {}},
      {"non-causal", {2, 2, 2, 7, 7, 6}, non_causal},
      {"grouped query Hq=4 Hkv=2", {2, 4, 2, 7, 7, 6}, {}},
      {"multi-query Hq=4 Hkv=1", {2, 4, 1, 7, 7, 6}, {}},
      {"padding mask", {2, 2, 1, 7, 7, 6}, padded},
      {"document ids", {2, 2, 1, 7, 7, 6}, documents},
      {"Tq < Tk", {2, 4, 2, 3, 7, 6}, documents},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Inputs x = random_qkv(c.layout, 21);
    auto f = [&](const std::vector<Tensor>& in) {
      return attention(in[0], in[1], in[2], c.options);
    };
    REQUIRE_GRADCHECK(f, {x.q, x.k, x.v});
  }
}

TEST_CASE("packed documents give the outputs and gradients of separate sequences", "[attention]") {
  const std::vector<int64_t> starts = {0, 3, 7, 9};  // documents [0,3), [3,7), [7,9)
  Layout l{1, 4, 2, 9, 9, 5};
  for (bool causal : {true, false}) {
    INFO("causal " << causal);
    Inputs packed = random_qkv(l, 31);
    AttentionOptions o = options(causal);
    // Ids only need to differ between neighbouring documents, not increase.
    o.document_ids = Tensor::from_ints({7, 7, 7, 2, 2, 2, 2, 9, 9}, {1, 9});
    Tensor weights = testing::random_input({1, 4, 9, 5}, 35, 1.f, false);
    Tensor packed_out = attend(packed, o);
    sum(packed_out * weights).backward();

    Inputs separate{packed.q.detach().requires_grad_(), packed.k.detach().requires_grad_(),
                    packed.v.detach().requires_grad_()};
    std::vector<Tensor> pieces;
    for (size_t d = 0; d + 1 < starts.size(); ++d) {
      auto cut = [&](const Tensor& t) { return slice(t, 2, starts[d], starts[d + 1]); };
      pieces.push_back(
          attention(cut(separate.q), cut(separate.k), cut(separate.v), options(causal)));
    }
    Tensor separate_out = concat(pieces, 2);
    sum(separate_out * weights).backward();

    REQUIRE_CLOSE(packed_out, separate_out, 1e-5f, 1e-6f);
    REQUIRE_CLOSE(packed.q.grad(), separate.q.grad(), 1e-4f, 1e-6f);
    REQUIRE_CLOSE(packed.k.grad(), separate.k.grad(), 1e-4f, 1e-6f);
    REQUIRE_CLOSE(packed.v.grad(), separate.v.grad(), 1e-4f, 1e-6f);
  }
}

TEST_CASE("a padded batch gives the unpadded outputs on real tokens and no gradient to pads",
          "[attention]") {
  Layout real{1, 2, 2, 5, 5, 4};
  Inputs x = random_qkv(real, 41);
  Tensor expected = attend(x, {});  // causal, unpadded

  // Row 0 is right-padded, row 1 left-padded, both to length 8 with random junk.
  Inputs junk = random_qkv({1, 2, 2, 3, 3, 4}, 45);
  auto pad = [](const Tensor& t, const Tensor& filler) {
    Tensor right = concat({t.detach(), filler.detach()}, 2);
    Tensor left = concat({filler.detach(), t.detach()}, 2);
    return concat({right, left}, 0).requires_grad_();
  };
  Inputs padded{pad(x.q, junk.q), pad(x.k, junk.k), pad(x.v, junk.v)};
  AttentionOptions o;
  o.key_padding_mask = Tensor::from_ints({1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, {2, 8});
  Tensor out = attend(padded, o);
  REQUIRE_CLOSE(slice(slice(out, 0, 0, 1), 2, 0, 5), expected, 1e-5f, 1e-6f);
  REQUIRE_CLOSE(slice(slice(out, 0, 1, 2), 2, 3, 8), expected, 1e-5f, 1e-6f);

  sum(out * testing::random_input(out.shape(), 47, 1.f, false)).backward();
  Tensor zeros = Tensor::zeros({1, 2, 3, 4});
  REQUIRE_CLOSE(slice(slice(padded.k.grad(), 0, 0, 1), 2, 5, 8), zeros, 0.f, 0.f);
  REQUIRE_CLOSE(slice(slice(padded.v.grad(), 0, 1, 2), 2, 0, 3), zeros, 0.f, 0.f);
}

TEST_CASE("non-finite values in masked key slots never reach visible outputs or gradients",
          "[attention]") {
  // A KV cache may hold garbage (even NaN) in slots the mask hides.
  Layout l{1, 4, 2, 6, 6, 5};
  Inputs clean = random_qkv(l, 81);
  AttentionOptions o = options(false);
  o.key_padding_mask = Tensor::from_ints({1, 1, 0, 1, 1, 0}, {1, 6});
  auto poisoned = [](const Tensor& t) {
    std::vector<float> values = t.to_vector();
    int64_t D = t.size(3), T = t.size(2);
    for (int64_t head = 0; head < t.size(1); ++head)
      for (int64_t j : {2, 5})
        for (int64_t d = 0; d < D; ++d) values[(head * T + j) * D + d] = std::nanf("");
    return Tensor::from_vector(values, t.shape(), TensorOptions{}.grad());
  };
  Inputs dirty{clean.q.detach().requires_grad_(), poisoned(clean.k), poisoned(clean.v)};
  Tensor weights = testing::random_input({1, 4, 6, 5}, 83, 1.f, false);
  Tensor expected = attend(clean, o);
  Tensor out = attend(dirty, o);
  sum(expected * weights).backward();
  sum(out * weights).backward();
  REQUIRE_CLOSE(out, expected, 0.f, 0.f);
  REQUIRE_CLOSE(dirty.q.grad(), clean.q.grad(), 0.f, 0.f);
  REQUIRE_CLOSE(slice(dirty.k.grad(), 2, 0, 2), slice(clean.k.grad(), 2, 0, 2), 0.f, 0.f);
  REQUIRE_CLOSE(slice(dirty.v.grad(), 2, 3, 5), slice(clean.v.grad(), 2, 3, 5), 0.f, 0.f);
}

TEST_CASE("decoding against cached keys equals the last rows of full causal attention",
          "[attention]") {
  Layout l{2, 4, 2, 7, 7, 6};
  Inputs x = random_qkv(l, 51);
  for (const AttentionOptions& o : {AttentionOptions{}, with_padding_and_documents(true)}) {
    Tensor full = attend(x, o);
    for (int64_t new_tokens : {1, 3}) {
      INFO("Tq = " << new_tokens << ", masks " << o.document_ids.defined());
      Tensor q_new = slice(x.q, 2, l.Tq - new_tokens, l.Tq);
      Tensor decoded = attention(q_new, x.k, x.v, o);
      REQUIRE_CLOSE(decoded, slice(full, 2, l.Tq - new_tokens, l.Tq), 1e-6f, 1e-7f);
    }
  }
}

TEST_CASE("a query with no visible key outputs zeros, lse = -inf and no gradient", "[attention]") {
  Layout l{2, 2, 1, 4, 4, 3};
  Inputs x = random_qkv(l, 61);
  AttentionOptions o;  // causal + left padding: queries 0 and 1 of row 1 see nothing
  o.key_padding_mask = Tensor::from_ints({1, 1, 1, 1, 0, 0, 1, 1}, {2, 4});
  Tensor out = attend(x, o);
  sum(out * testing::random_input(out.shape(), 63, 1.f, false)).backward();
  Tensor zero_rows = Tensor::zeros({1, 2, 2, 3});
  REQUIRE_CLOSE(slice(slice(out, 0, 1, 2), 2, 0, 2), zero_rows, 0.f, 0.f);
  REQUIRE_CLOSE(slice(slice(x.q.grad(), 0, 1, 2), 2, 0, 2), zero_rows, 0.f, 0.f);
  REQUIRE(std::fabs(slice(slice(out, 0, 1, 2), 2, 2, 3).to_vector()[0]) > 0.f);

  kernels::AttentionShape s{.B = 2,
                            .Hq = 2,
                            .Hkv = 1,
                            .Tq = 4,
                            .Tk = 4,
                            .D = 3,
                            .scale = 0.5f,
                            .causal = true,
                            .key_padding_mask = o.key_padding_mask.data<int32_t>(),
                            .document_ids = nullptr};
  Tensor raw_out = Tensor::empty({2, 2, 4, 3});
  Tensor lse = Tensor::empty({2, 2, 4});
  kernels::attention_forward<kernels::Backend::cpu>(s, x.q.data_ptr(), x.k.data_ptr(),
                                                    x.v.data_ptr(), raw_out.data_ptr(),
                                                    lse.data<float>(), DType::f32);
  std::vector<float> lse_values = lse.to_vector();  // (b, h, i) row-major
  for (int64_t h = 0; h < 2; ++h) {
    INFO("head " << h);
    REQUIRE(lse_values[(1 * 2 + h) * 4 + 0] == -std::numeric_limits<float>::infinity());
    REQUIRE(lse_values[(1 * 2 + h) * 4 + 1] == -std::numeric_limits<float>::infinity());
    REQUIRE(std::isfinite(lse_values[(1 * 2 + h) * 4 + 2]));
    REQUIRE(std::isfinite(lse_values[(0 * 2 + h) * 4 + 0]));
  }
  // Batch 0, head 1, query 3 sees keys 0..3 of the single kv head: lse = log sum exp(0.5 q.k).
  std::vector<float> qv = x.q.to_vector(), kv = x.k.to_vector();
  const float* q_row = qv.data() + ((0 * 2 + 1) * 4 + 3) * 3;
  double sum_exp = 0;
  for (int64_t j = 0; j < 4; ++j) {
    double score = 0;
    for (int64_t d = 0; d < 3; ++d) score += double(q_row[d]) * kv[j * 3 + d];
    sum_exp += std::exp(0.5 * score);
  }
  REQUIRE(lse_values[(0 * 2 + 1) * 4 + 3] == Approx(std::log(sum_exp)).epsilon(1e-5));
}

TEST_CASE("attention results do not depend on the number of threads", "[attention]") {
#if defined(_OPENMP)
  Layout l{2, 4, 2, 48, 48, 32};
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Inputs x = random_qkv(l, 71);
    Tensor out = attend(x, {});
    sum(out * testing::random_input(out.shape(), 73, 1.f, false)).backward();
    return std::vector<std::vector<float>>{out.to_vector(), x.q.grad().to_vector(),
                                           x.k.grad().to_vector(), x.v.grad().to_vector()};
  };
  int default_threads = omp_get_max_threads();
  auto serial = run(1);
  auto threaded = run(3);
  omp_set_num_threads(default_threads);
  for (size_t t = 0; t < serial.size(); ++t) {
    INFO("tensor " << t << " (out, dq, dk, dv)");
    REQUIRE(serial[t] == threaded[t]);
  }
#else
  SUCCEED("built without OpenMP: one thread only");
#endif
}

TEST_CASE("attention rejects inconsistent inputs with messages naming the shapes", "[attention]") {
  auto f32 = [](const Shape& s) { return Tensor::zeros(s); };
  REQUIRE_THROWS_WITH(attention(f32({2, 4, 16, 64}), f32({2, 4, 12, 32}), f32({2, 4, 12, 32})),
                      Catch::Contains("attention: q is (2,4,16,64) but k is (2,4,12,32)"));
  REQUIRE_THROWS_WITH(attention(f32({4, 16, 64}), f32({2, 4, 12, 64}), f32({2, 4, 12, 64})),
                      Catch::Contains("attention: q must be (B, Hq, Tq, D), got (4,16,64)"));
  REQUIRE_THROWS_WITH(attention(f32({1, 6, 5, 8}), f32({1, 4, 5, 8}), f32({1, 4, 5, 8})),
                      Catch::Contains("Hq = 6 must be a multiple of Hkv = 4"));
  REQUIRE_THROWS_WITH(attention(f32({1, 2, 5, 4}), f32({1, 2, 5, 4}), f32({1, 2, 6, 4})),
                      Catch::Contains("attention: k is (1,2,5,4) but v is (1,2,6,4)"));
  REQUIRE_THROWS_WITH(attention(f32({1, 2, 6, 4}), f32({1, 2, 5, 4}), f32({1, 2, 5, 4})),
                      Catch::Contains("attention: Tq = 6 > Tk = 5"));
  REQUIRE_THROWS_WITH(
      attention(f32({1, 2, 5, 4}).to(DType::bf16), f32({1, 2, 5, 4}), f32({1, 2, 5, 4})),
      Catch::Contains("attention: the CPU backend computes in f32 but q is bf16"));

  Tensor q = f32({2, 2, 5, 4}), kv = f32({2, 1, 5, 4});
  AttentionOptions float_mask;
  float_mask.key_padding_mask = Tensor::ones({2, 5});
  REQUIRE_THROWS_WITH(attention(q, kv, kv, float_mask),
                      Catch::Contains("attention: key_padding_mask must be i32, got f32 (2,5)"));
  AttentionOptions short_mask;
  short_mask.key_padding_mask = Tensor::from_ints({1, 1, 1, 1, 1, 1, 1, 1}, {2, 4});
  REQUIRE_THROWS_WITH(attention(q, kv, kv, short_mask),
                      Catch::Contains("attention: key_padding_mask is (2,4) but must be (B, Tk) "
                                      "= (2,5)"));
  AttentionOptions flat_docs;
  flat_docs.document_ids = Tensor::from_ints({0, 0, 0, 1, 1}, {5});
  REQUIRE_THROWS_WITH(attention(q, kv, kv, flat_docs),
                      Catch::Contains("attention: document_ids is (5) but must be (B, Tk)"));
  AttentionOptions bad_scale = options(true, std::numeric_limits<float>::quiet_NaN());
  REQUIRE_THROWS_WITH(attention(q, kv, kv, bad_scale),
                      Catch::Contains("attention: scale must be finite"));
}
