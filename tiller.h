// tiller — the public API in one include. Research code can also include the module headers
// it needs (core/tensor.h, core/ops.h, ...) directly.
#pragma once

#include "core/tensor/autograd.h"
#include "core/dist/communicator.h"
#include "core/io/checkpoint.h"
#include "kernels/error.h"
#include "core/models/model.h"
#include "core/ops/ops.h"
#include "core/io/safetensors.h"
#include "core/tensor/tensor.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
