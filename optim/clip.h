// Global gradient norm and norm clipping (torch.nn.utils.clip_grad_norm_ semantics).
//
// The norm is sqrt(sum over every parameter's gradient of g^2), accumulated in f32 with one
// kernels::sum_squares call per tensor into a single device scalar, so only one number crosses
// to the host. Parameters without a gradient contribute nothing.
//
// A non-finite norm (a NaN or inf anywhere) is reported, not hidden: clip_grad_norm then leaves
// the gradients untouched and returns finite = false so the trainer can skip the step.
// To clip without an extra pass over the gradients, use global_grad_norm + clip_factor and pass
// the factor to AdamW::step(grad_scale).
#pragma once

#include "core/tensor/parameter.h"

namespace tiller::optim {

struct GradNorm {
  float norm = 0.f;    // before clipping
  float scale = 1.f;   // factor the gradients were (or should be) multiplied by; <= 1
  bool finite = true;  // false when norm is NaN or inf
};

float global_grad_norm(const ParameterList& params);

// min(1, max_norm / (norm + 1e-6)), PyTorch's factor; 1 when the norm is not finite.
float clip_factor(float norm, float max_norm);

// Scales every gradient in place by clip_factor(norm, max_norm) when the norm exceeds max_norm.
GradNorm clip_grad_norm(const ParameterList& params, float max_norm);

}  // namespace tiller::optim
