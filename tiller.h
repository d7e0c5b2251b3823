// tiller — the public API in one include. Research code can also include the module headers
// it needs (core/tensor.h, core/ops.h, ...) directly.
#pragma once

#include "core/autograd.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/model.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
