// The backend tag every kernel family is templated on.
//
// Each family header (kernels/layernorm.h, ...) declares its kernels once as
// `template <Backend B> void name(...)`; kernels/cpu/<family>.cpp defines the Backend::cpu
// specialisation and kernels/cuda/<family>.cu the Backend::cuda one. The declaration is the
// contract: both backends take identical arguments, so core/ dispatches with one macro
// (core/dispatch.h) and a signature mismatch is a compile error, not a link surprise.
//
// Conventions for every kernel:
//   - buffers are contiguous, row-major; shapes are passed as plain integers named as in the
//     comment beside each declaration;
//   - tensors whose dtype may vary (activations, weights, gradients) are `void*` + a DType; the CPU
//     backend accepts f32 only (core/ checks), CUDA accepts f32 and bf16;
//   - statistics, losses and optimizer state are always f32 (`float*`), token ids always i32;
//   - outputs are overwritten unless the comment says "accumulates" (+=);
//   - kernels launch on the current stream and do not synchronise.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace tiller::kernels {

enum class Backend { cpu, cuda };

}  // namespace tiller::kernels
