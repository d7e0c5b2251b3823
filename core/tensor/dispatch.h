// Picks the backend for a kernel call from a tensor's device. Private to tiller's sources.
//
// TILLER_DISPATCH(device, kernels::layernorm_forward, args...) calls the Backend::cuda
// specialisation on a CUDA device and the Backend::cpu one otherwise. In a build without CUDA
// the CUDA branch throws "<kernel>: built without CUDA" — the one place that error is raised, so
// there are no per-kernel stub files to keep in sync.
#pragma once

#include "kernels/error.h"
#include "kernels/backend.h"

namespace tiller::detail {
[[noreturn]] inline void no_cuda(const char* kernel) {
  fail("{}: built without CUDA (configure with -DTILLER_CUDA=ON on a machine with nvcc)", kernel);
}
}  // namespace tiller::detail

#if defined(TILLER_HAS_CUDA)
#define TILLER_DISPATCH(device, kernel, ...)                          \
  ((device).is_cuda() ? kernel<::tiller::kernels::Backend::cuda>(__VA_ARGS__) \
                      : kernel<::tiller::kernels::Backend::cpu>(__VA_ARGS__))
#else
#define TILLER_DISPATCH(device, kernel, ...)                \
  ((device).is_cuda() ? ::tiller::detail::no_cuda(#kernel)  \
                      : kernel<::tiller::kernels::Backend::cpu>(__VA_ARGS__))
#endif
