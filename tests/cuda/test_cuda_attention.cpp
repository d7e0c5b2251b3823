// [cuda] The CUDA attention kernels against the CPU reference (kernels/cpu/attention.cpp).
//
// Each problem runs forward and backward on both backends from the same random inputs; every
// CUDA output (out, lse, dq, dk, dv) is filled with NaN first, so an element a kernel forgets to
// write fails the comparison. bf16 problems feed the CPU the bf16-rounded inputs in f32, so the
// tolerance only has to cover bf16 probabilities on the tensor cores and bf16 outputs.
// The problem list covers each kernel path: the tensor-core forward (bf16, D = 64/128), the FMA
// tiles (f32, and bf16 at D = 40), split-K decode (Tq <= 16), sequence lengths that are not a
// multiple of any tile (77, 130), GQA, the Tk - Tq causal offset, padding and packed documents.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/ops/ops.h"
#include "kernels/attention.h"
#include "kernels/memory.h"
#include "support/gradcheck.h"

using namespace tiller;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Problem {
  const char* name;
  int64_t B, Hq, Hkv, Tq, Tk, D;
  bool causal = true;
  bool padding = false;    // left padding on odd batch rows, right padding on even ones
  bool documents = false;  // packed documents of uneven lengths
};

// Odd batch rows pad their first Tk / 4 keys, so with causal attention their first queries see
// no key at all; even rows pad their last 3 keys.
Tensor padding_mask(const Problem& p) {
  std::vector<int32_t> mask(static_cast<size_t>(p.B * p.Tk));
  for (int64_t b = 0; b < p.B; ++b) {
    int64_t left = b % 2 == 1 ? p.Tk / 4 : 0, right = b % 2 == 0 ? 3 : 0;
    for (int64_t j = 0; j < p.Tk; ++j) mask[b * p.Tk + j] = j >= left && j < p.Tk - right;
  }
  return Tensor::from_ints(mask, {p.B, p.Tk});
}

// Documents of lengths 5, 17, 40, 5, 17, ... shifted per batch row, ids not in increasing order.
Tensor document_ids(const Problem& p) {
  const int64_t lengths[] = {5, 17, 40};
  std::vector<int32_t> ids(static_cast<size_t>(p.B * p.Tk));
  for (int64_t b = 0; b < p.B; ++b) {
    int64_t doc = 0, left_in_doc = lengths[b % 3];
    for (int64_t j = 0; j < p.Tk; ++j) {
      if (left_in_doc-- == 0) left_in_doc = lengths[++doc % 3] - 1;
      ids[b * p.Tk + j] = static_cast<int32_t>((doc * 7) % 11);
    }
  }
  return Tensor::from_ints(ids, {p.B, p.Tk});
}

struct Inputs {
  Tensor q, k, v, dout, mask, docs;  // CPU; q/k/v/dout f32 holding values exact in `dtype`
};

Inputs make_inputs(const Problem& p, DType dtype, uint64_t seed) {
  auto exact = [&](const Shape& shape, uint64_t s) {
    return testing::random_input(shape, s, 1.f, false).to(dtype).to(DType::f32);
  };
  Inputs in{exact({p.B, p.Hq, p.Tq, p.D}, seed),
            exact({p.B, p.Hkv, p.Tk, p.D}, seed + 1),
            exact({p.B, p.Hkv, p.Tk, p.D}, seed + 2),
            exact({p.B, p.Hq, p.Tq, p.D}, seed + 3),
            Tensor(),
            Tensor()};
  if (p.padding) in.mask = padding_mask(p);
  if (p.documents) in.docs = document_ids(p);
  return in;
}

struct Outputs {
  Tensor out, lse, dq, dk, dv;  // CPU f32
};

// Forward then backward through the kernels of `device`, outputs poisoned with NaN first. The
// backward gets this backend's own out and lse, as the attention op would give it.
Outputs run_kernels(const Problem& p, const Inputs& in, Device device, DType dtype) {
  auto place = [&](const Tensor& t) { return t.defined() ? t.to(dtype).to(device) : t; };
  Tensor q = place(in.q), k = place(in.k), v = place(in.v), dout = place(in.dout);
  Tensor mask = in.mask.defined() ? in.mask.to(device) : Tensor();
  Tensor docs = in.docs.defined() ? in.docs.to(device) : Tensor();
  TensorOptions options{.dtype = dtype, .device = device};
  Tensor out = Tensor::full(q.shape(), kNaN, options);
  Tensor lse = Tensor::full({p.B, p.Hq, p.Tq}, kNaN, options.with(DType::f32));
  Tensor dq = Tensor::full(q.shape(), kNaN, options);
  Tensor dk = Tensor::full(k.shape(), kNaN, options);
  Tensor dv = Tensor::full(v.shape(), kNaN, options);

  kernels::AttentionShape s;
  s.B = p.B, s.Hq = p.Hq, s.Hkv = p.Hkv, s.Tq = p.Tq, s.Tk = p.Tk, s.D = p.D;
  s.scale = 1.f / std::sqrt(static_cast<float>(p.D));
  s.causal = p.causal;
  s.key_padding_mask = mask.defined() ? mask.data<int32_t>() : nullptr;
  s.document_ids = docs.defined() ? docs.data<int32_t>() : nullptr;
  if (device.is_cuda()) {
    // Direct Backend::cuda calls exist only in a CUDA build of libtiller; a CPU-only build of this
    // executable never reaches here (no device: every case is skipped).
#if defined(TILLER_HAS_CUDA)
    kernels::attention_forward<kernels::Backend::cuda>(s, q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                                       out.data_ptr(), lse.data<float>(), dtype);
    kernels::attention_backward<kernels::Backend::cuda>(
        s, q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), dout.data_ptr(),
        lse.data<float>(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dtype);
    kernels::cuda::synchronize();
#else
    FAIL("attention kernels: this build has no CUDA backend");
#endif
  } else {
    kernels::attention_forward<kernels::Backend::cpu>(s, q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                                      out.data_ptr(), lse.data<float>(), dtype);
    kernels::attention_backward<kernels::Backend::cpu>(
        s, q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), dout.data_ptr(),
        lse.data<float>(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dtype);
  }
  auto host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::f32); };
  return {host(out), host(lse), host(dq), host(dk), host(dv)};
}

// lse may hold -inf (rows with no visible key), which REQUIRE_CLOSE would read as NaN.
int64_t lse_mismatches(const Tensor& got, const Tensor& want, float rtol, float atol,
                       std::string& first) {
  std::vector<float> g = got.to_vector(), w = want.to_vector();
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok =
        std::isinf(w[i]) ? g[i] == w[i] : std::fabs(g[i] - w[i]) <= atol + rtol * std::fabs(w[i]);
    if (!ok && bad++ == 0) first = fmt::format("lse[{}]: {} vs {}", i, g[i], w[i]);
  }
  return bad;
}

void require_parity(const Problem& p, DType dtype, float rtol, float atol) {
  Inputs in = make_inputs(p, DType::bf16 == dtype ? DType::bf16 : DType::f32, 1234);
  Outputs want = run_kernels(p, in, Device::cpu(), DType::f32);
  Outputs got = run_kernels(p, in, Device::cuda(), dtype);
  INFO(p.name << " " << dtype_name(dtype));
  REQUIRE_CLOSE(got.out, want.out, rtol, atol);
  std::string first_lse;
  INFO(first_lse);
  REQUIRE(lse_mismatches(got.lse, want.lse, rtol, atol, first_lse) == 0);
  REQUIRE_CLOSE(got.dq, want.dq, rtol, atol);
  REQUIRE_CLOSE(got.dk, want.dk, rtol, atol);
  REQUIRE_CLOSE(got.dv, want.dv, rtol, atol);
}

const std::vector<Problem>& problems() {
  static const std::vector<Problem> list = {
      {"D=64 causal, T=77", 2, 4, 4, 77, 77, 64},
      {"D=128 non-causal GQA 4:2, T=130", 2, 4, 2, 130, 130, 128, false},
      {"odd D=40 causal GQA 6:2, T=77", 1, 6, 2, 77, 77, 40},
      {"D=64 causal, padding + documents, GQA 4:1", 2, 4, 1, 100, 100, 64, true, true, true},
      {"D=128 non-causal, padding + documents", 2, 2, 2, 90, 90, 128, false, true, true},
      {"D=64 causal, Tq=40 < Tk=97 (cache offset)", 2, 4, 2, 40, 97, 64, true, true},
      {"decode Tq=1, Tk=1500 (split-K), D=128 GQA 8:2", 2, 8, 2, 1, 1500, 128, true, true},
      {"decode Tq=5, Tk=600, D=64, documents", 2, 4, 4, 5, 600, 64, true, false, true},
      {"decode Tq=16, Tk=300, odd D=40, non-causal", 1, 2, 1, 16, 300, 40, false},
      {"D=256 causal, T=50", 1, 2, 1, 50, 50, 256},
  };
  return list;
}

}  // namespace

TEST_CASE("CUDA attention forward and backward match the CPU reference in f32",
          "[cuda][attention]") {
  for (const Problem& p : problems()) {
    DYNAMIC_SECTION(p.name) {
      require_parity(p, DType::f32, 1e-4f, 1e-4f);
    }
  }
}

TEST_CASE("CUDA attention matches the CPU reference in bf16 (tensor cores at D = 64 and 128)",
          "[cuda][attention]") {
  for (const Problem& p : problems()) {
    DYNAMIC_SECTION(p.name) {
      require_parity(p, DType::bf16, 3e-2f, 3e-2f);
    }
  }
}

TEST_CASE("CUDA attention gives rows with no visible key zero output, lse -inf, zero dq",
          "[cuda][attention]") {
  for (DType dtype : {DType::f32, DType::bf16}) {
    Problem p{"left-padded causal", 2, 2, 2, 70, 70, 64, true, true};
    Outputs got = run_kernels(p, make_inputs(p, dtype, 77), Device::cuda(), dtype);
    // Batch row 1 pads its first 70 / 4 = 17 keys: its queries 0..16 see nothing.
    std::vector<float> out = got.out.to_vector(), lse = got.lse.to_vector(),
                       dq = got.dq.to_vector();
    for (int64_t h = 0; h < p.Hq; ++h)
      for (int64_t i = 0; i < 17; ++i) {
        int64_t row = (1 * p.Hq + h) * p.Tq + i;
        REQUIRE(lse[row] == -std::numeric_limits<float>::infinity());
        for (int64_t d = 0; d < p.D; ++d) {
          REQUIRE(out[row * p.D + d] == 0.f);
          REQUIRE(dq[row * p.D + d] == 0.f);
        }
      }
    REQUIRE(std::isfinite(lse[(1 * p.Hq) * p.Tq + 17]));  // the first row with a real key
  }
}

TEST_CASE("CUDA attention backward is bitwise deterministic (no float atomics)",
          "[cuda][attention]") {
  Problem p{"GQA 8:2 causal", 2, 8, 2, 150, 150, 64, true, true, true};
  Inputs in = make_inputs(p, DType::bf16, 5);
  Outputs first = run_kernels(p, in, Device::cuda(), DType::bf16);
  Outputs second = run_kernels(p, in, Device::cuda(), DType::bf16);
  REQUIRE(first.dq.to_vector() == second.dq.to_vector());
  REQUIRE(first.dk.to_vector() == second.dk.to_vector());
  REQUIRE(first.dv.to_vector() == second.dv.to_vector());
}

TEST_CASE("the attention op on CUDA tensors matches the CPU op, gradients included",
          "[cuda][attention]") {
  Problem p{"op", 2, 4, 2, 77, 77, 64, true, true, true};
  for (DType dtype : {DType::f32, DType::bf16}) {
    Inputs in = make_inputs(p, dtype, 99);
    auto run = [&](Device device, DType run_dtype) {
      Tensor q = in.q.to(run_dtype).to(device), k = in.k.to(run_dtype).to(device),
             v = in.v.to(run_dtype).to(device);
      q.requires_grad_(), k.requires_grad_(), v.requires_grad_();
      AttentionOptions options;
      options.key_padding_mask = in.mask.to(device);
      options.document_ids = in.docs.to(device);
      Tensor out = attention(q, k, v, options);
      out.backward(in.dout.to(run_dtype).to(device));
      auto host = [](const Tensor& t) { return t.to(Device::cpu()).to(DType::f32); };
      return std::vector<Tensor>{host(out), host(q.grad()), host(k.grad()), host(v.grad())};
    };
    std::vector<Tensor> want = run(Device::cpu(), DType::f32);
    std::vector<Tensor> got = run(Device::cuda(), dtype);
    float tolerance = dtype == DType::bf16 ? 3e-2f : 1e-4f;
    INFO(dtype_name(dtype));
    for (size_t i = 0; i < want.size(); ++i) REQUIRE_CLOSE(got[i], want[i], tolerance, tolerance);
  }
}

TEST_CASE("CUDA attention rejects head dims above 256 with the supported range",
          "[cuda][attention]") {
  Generator gen(3);
  TensorOptions options{.dtype = DType::f32, .device = Device::cuda()};
  Tensor q = Tensor::randn({1, 1, 4, 264}, gen, 0.f, 1.f, options);
  REQUIRE_THROWS_WITH(attention(q, q, q),
                      Catch::Contains("head dims 1..256") && Catch::Contains("D = 264"));
}
