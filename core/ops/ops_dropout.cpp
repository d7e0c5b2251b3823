// dropout: inverted dropout with a counter-based mask (kernels/elementwise.h, kernels/random.h).
//
// The mask is never stored. The forward takes numel counters from the Generator and the node
// keeps only (seed, offset); the backward recomputes the identical mask from them, so a dropout
// layer costs no activation memory and the mask is the same on every backend and thread count.
// When the op is the identity (eval mode or p == 0) it returns x itself and draws no counters,
// so evaluation does not advance the training random stream.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/elementwise.h"

namespace tiller {

Tensor dropout(const Tensor& x, float p, Generator& gen, bool training) {
  const char* op = "dropout";
  detail::check_float(op, "x", x);
  TILLER_CHECK(p >= 0.f && p <= 1.f, "dropout: p must be in [0, 1], got {}", p);
  if (!training || p == 0.f) return x;
  int64_t n = x.numel();
  uint64_t seed = gen.seed;
  uint64_t offset = gen.take(static_cast<uint64_t>(n));
  Tensor out = detail::empty_like(x);
  TILLER_DISPATCH(x.device(), kernels::dropout, x.data_ptr(), out.data_ptr(), n, p, seed, offset,
                  x.dtype());
  return record(out, op, {x}, [p, seed, offset, n, shape = x.shape()](const Tensor& g) {
    Tensor dx = Tensor::empty(shape, {.dtype = g.dtype(), .device = g.device()});
    TILLER_DISPATCH(g.device(), kernels::dropout_backward, g.data_ptr(), dx.data_ptr(), n, p, seed,
                    offset, g.dtype());
    return std::vector<Tensor>{dx};
  });
}

}  // namespace tiller
