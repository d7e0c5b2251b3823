// Validation shared by ops (see core/tensor/op_checks.h).
#include "core/tensor/op_checks.h"

#include "core/tensor/dispatch.h"
#include "kernels/token_check.h"

namespace tiller::detail {

// `op` and `name` are string literals at every call site (the CUDA fault record keeps them).
Tensor check_token_range(const char* op, const char* name, const Tensor& ids, int64_t V,
                         const int32_t* allowed, bool want_divisor) {
  Tensor divisor = want_divisor ? empty_f32(ids, {}) : Tensor();
  TILLER_DISPATCH(ids.device(), kernels::check_token_ids, ids.data<int32_t>(), ids.numel(), V,
                  allowed, want_divisor ? divisor.data<float>() : nullptr,
                  kernels::TokenSite{op, name});
  return divisor;
}

}  // namespace tiller::detail
