// Argument checks shared by the communicators (internal to core/dist): every collective checks
// its tensors before handing pointers to an engine, so a wrong call is a tiller::Error naming the
// collective and the tensors, not a corrupted buffer on another rank.
#pragma once

#include "core/tensor/tensor.h"
#include "kernels/error.h"

namespace tiller::dist {

inline void check_collective_tensor(const char* op, const Tensor& tensor, Device device) {
  TILLER_CHECK(tensor.defined(), "{}: the tensor is undefined", op);
  TILLER_CHECK(tensor.device() == device,
               "{}: tensor {} is on {} but this communicator works on {}", op,
               shape_str(tensor.shape()), tensor.device().str(), device.str());
}

// `whole` holds world_size chunks the size of `chunk` (reduce_scatter's input, all_gather's
// output).
inline void check_scatter_gather(const char* op, const Tensor& whole, const Tensor& chunk,
                                 int world_size, Device device) {
  check_collective_tensor(op, whole, device);
  check_collective_tensor(op, chunk, device);
  TILLER_CHECK(whole.dtype() == chunk.dtype(), "{}: the tensors are {} and {}", op,
               dtype_name(whole.dtype()), dtype_name(chunk.dtype()));
  TILLER_CHECK(whole.numel() == chunk.numel() * world_size,
               "{}: the whole tensor {} must hold world_size {} x the chunk {} elements", op,
               shape_str(whole.shape()), world_size, shape_str(chunk.shape()));
}

}  // namespace tiller::dist
