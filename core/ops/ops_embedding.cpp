// embedding: ids (...) i32 -> rows of weight (V, C), giving (..., C).
//
// Ids are range-checked where they live before the kernel runs (detail::check_token_range: at once
// on the CPU; on CUDA reported at the next host synchronisation, the kernels meanwhile treating a
// bad id as a zero row with no gradient), so no id reads or writes outside the table. The node's only input is the weight; ids carry no
// gradient. The backward kernel overwrites a full (V, C) gradient, rows of unused ids included.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/embedding.h"

namespace tiller {

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  const char* op = "embedding";
  detail::check_i32(op, "ids", ids);
  detail::check_float(op, "weight", weight);
  detail::check_same_device(op, ids, "ids", weight, "weight");
  TILLER_CHECK(weight.dim() == 2, "embedding: weight must be (V, C), got {}",
               shape_str(weight.shape()));
  int64_t V = weight.size(0), C = weight.size(1);
  detail::check_token_range(op, "ids", ids, V);
  int64_t N = ids.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = detail::empty_like(weight, out_shape);
  if (N > 0 && C > 0)
    TILLER_DISPATCH(weight.device(), kernels::embedding_forward, ids.data<int32_t>(),
                    weight.data_ptr(), out.data_ptr(), N, V, C, weight.dtype());
  return record(out, op, {weight}, [ids, weight, N, V, C](const Tensor& g) {
    Tensor dweight = detail::empty_like(weight);
    Tensor dout = g.to(weight.dtype());
    TILLER_DISPATCH(weight.device(), kernels::embedding_backward, ids.data<int32_t>(),
                    dout.data_ptr(), dweight.data_ptr(), N, V, C, weight.dtype());
    return std::vector<Tensor>{dweight};
  });
}

}  // namespace tiller
