// attention and rope: validation at the op boundary, dispatch, and their autograd nodes.
//
// Decisions a caller should know:
//   - Tq may be smaller than Tk (decoding against a KV cache: query i sits at position
//     Tk - Tq + i). Tq > Tk is accepted only for non-causal attention without document ids
//     (cross-attention); otherwise the leading queries would have no position among the keys.
//   - document_ids are (B, Tk) and, as in kernels/attention.h, a query's document is read at its
//     absolute position, so packed documents work for both training (Tq == Tk) and chunked
//     decoding (Tq < Tk).
//   - rope takes positions (B, T), or (T) shared by the batch; the shared case runs the kernel on
//     x viewed as (1, B*H, T, D), so no (B, T) copy of the positions is made.
// The attention node saves q, k, v, the output (detached, to avoid a reference cycle through its
// own node), lse (B, Hq, Tq) f32 and the masks; its backward is one attention_backward call. The
// rope node saves only the positions: its backward is the inverse rotation.
#include <cmath>

#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"

namespace tiller {

using detail::check_pair;
using detail::check_same_device;
using detail::empty_f32;
using detail::empty_like;

namespace {

void check_key_table(const char* name, const Tensor& table, const Tensor& q, int64_t B,
                     int64_t Tk) {
  detail::check_defined("attention", name, table);
  TILLER_CHECK(table.dtype() == DType::i32, "attention: {} must be i32, got {} {}", name,
               dtype_name(table.dtype()), shape_str(table.shape()));
  check_same_device("attention", q, "q", table, name);
  TILLER_CHECK(table.dim() == 2 && table.size(0) == B && table.size(1) == Tk,
               "attention: {} is {} but must be (B, Tk) = ({},{})", name, shape_str(table.shape()),
               B, Tk);
}

kernels::AttentionShape attention_shape(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const AttentionOptions& options) {
  check_pair("attention", q, "q", k, "k");
  check_pair("attention", q, "q", v, "v");
  TILLER_CHECK(q.dim() == 4, "attention: q must be (B, Hq, Tq, D), got {}", shape_str(q.shape()));
  TILLER_CHECK(k.dim() == 4, "attention: k must be (B, Hkv, Tk, D), got {}", shape_str(k.shape()));
  TILLER_CHECK(k.shape() == v.shape(), "attention: k is {} but v is {}", shape_str(k.shape()),
               shape_str(v.shape()));
  TILLER_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3),
               "attention: q is {} but k is {} (batch and head dim must match)",
               shape_str(q.shape()), shape_str(k.shape()));
  kernels::AttentionShape s{.B = q.size(0),
                            .Hq = q.size(1),
                            .Hkv = k.size(1),
                            .Tq = q.size(2),
                            .Tk = k.size(2),
                            .D = q.size(3)};
  TILLER_CHECK(s.Hkv > 0 && s.Hq % s.Hkv == 0,
               "attention: Hq = {} must be a multiple of Hkv = {} (q is {}, k is {})", s.Hq, s.Hkv,
               shape_str(q.shape()), shape_str(k.shape()));
  TILLER_CHECK(std::isfinite(options.scale), "attention: scale must be finite, got {}",
               options.scale);
  s.scale = options.scale != 0.f ? options.scale
                                 : static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.D)));
  s.causal = options.causal;
  if (options.key_padding_mask.defined()) {
    check_key_table("key_padding_mask", options.key_padding_mask, q, s.B, s.Tk);
    s.key_padding_mask = options.key_padding_mask.data<int32_t>();
  }
  if (options.document_ids.defined()) {
    check_key_table("document_ids", options.document_ids, q, s.B, s.Tk);
    s.document_ids = options.document_ids.data<int32_t>();
  }
  TILLER_CHECK(s.Tq <= s.Tk || !(s.causal || s.document_ids),
               "attention: Tq = {} > Tk = {} needs non-causal attention without document_ids "
               "(query i sits at position Tk - Tq + i)",
               s.Tq, s.Tk);
  return s;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionOptions& options) {
  kernels::AttentionShape s = attention_shape(q, k, v, options);
  Tensor out = empty_like(q);
  Tensor lse = empty_f32(q, {s.B, s.Hq, s.Tq});  // (B, Hq, Tq)
  if (out.numel() > 0)
    TILLER_DISPATCH(q.device(), kernels::attention_forward, s, q.data_ptr(), k.data_ptr(),
                    v.data_ptr(), out.data_ptr(), lse.data<float>(), q.dtype());
  if (!needs_grad({&q, &k, &v})) return out;
  // The closure keeps the masks alive, so the raw pointers inside `s` stay valid.
  return record(out, "attention", {q, k, v},
                [s, q, k, v, saved_out = out.detach(), lse, mask = options.key_padding_mask,
                 docs = options.document_ids](const Tensor& g) {
                  Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
                  if (dq.numel() > 0 || dk.numel() > 0)
                    TILLER_DISPATCH(q.device(), kernels::attention_backward, s, q.data_ptr(),
                                    k.data_ptr(), v.data_ptr(), saved_out.data_ptr(), g.data_ptr(),
                                    lse.data<float>(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                                    q.dtype());
                  return std::vector<Tensor>{dq, dk, dv};
                });
}

namespace {

// Unrecorded rotation of x (B, H, T, D) by positions (B, T) or (T).
Tensor rope_raw(const Tensor& x, const Tensor& positions, float theta, bool inverse) {
  int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  bool shared = positions.dim() == 1;
  Tensor out = empty_like(x);
  if (out.numel() > 0)
    TILLER_DISPATCH(x.device(), kernels::rope, x.data_ptr(), positions.data<int32_t>(),
                    out.data_ptr(), shared ? 1 : B, shared ? B * H : H, T, D, theta, inverse,
                    x.dtype());
  return out;
}

}  // namespace

Tensor rope(const Tensor& x, const Tensor& positions, float theta) {
  detail::check_float("rope", "x", x);
  detail::check_defined("rope", "positions", positions);
  TILLER_CHECK(positions.dtype() == DType::i32, "rope: positions must be i32, got {} {}",
               dtype_name(positions.dtype()), shape_str(positions.shape()));
  check_same_device("rope", x, "x", positions, "positions");
  TILLER_CHECK(x.dim() == 4, "rope: x must be (B, H, T, D), got {}", shape_str(x.shape()));
  TILLER_CHECK(x.size(3) % 2 == 0, "rope: head dim D = {} must be even (x is {})", x.size(3),
               shape_str(x.shape()));
  bool per_batch =
      positions.dim() == 2 && positions.size(0) == x.size(0) && positions.size(1) == x.size(2);
  bool shared = positions.dim() == 1 && positions.size(0) == x.size(2);
  TILLER_CHECK(per_batch || shared,
               "rope: positions are {} but x is {}; expected (B, T) = ({},{}) or (T) = ({})",
               shape_str(positions.shape()), shape_str(x.shape()), x.size(0), x.size(2), x.size(2));
  TILLER_CHECK(std::isfinite(theta) && theta > 0.f, "rope: theta must be positive, got {}", theta);
  Tensor out = rope_raw(x, positions, theta, /*inverse=*/false);
  return record(out, "rope", {x}, [positions, theta](const Tensor& g) {
    return std::vector<Tensor>{rope_raw(g, positions, theta, /*inverse=*/true)};
  });
}

}  // namespace tiller
