// Range check of token ids on the device that holds them.
//
// Embedding, cross-entropy and token log-probs index a table with ids. Copying the ids to the host
// to check them would make every CUDA training step wait for the device three times, so the check
// runs where the ids live:
//   - CPU: the ids are scanned at once; the first bad one throws tiller::Error.
//   - CUDA: a kernel scans them and records the first bad id (over every check since the last
//     host synchronisation) in a small record in mapped host memory; the next host
//     synchronisation (kernels/memory.h: a blocking copy, synchronize(), loss.item()) raises it as
//     tiller::Error with the same words as the CPU. Until then the kernels that consume ids treat
//     a bad id as absent (embedding: a zero row and no gradient; cross-entropy and log-probs: no
//     loss and no gradient), so nothing reads or writes outside a table (PyTorch reports the same
//     fault asynchronously too, as a device-side assert that poisons the context; here the process
//     can catch the error and go on).
// `op` and `name` must be string literals (the CUDA record keeps the pointers).
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

struct TokenSite {
  const char* op;    // "embedding"
  const char* name;  // "ids"
};

// ids (N) must lie in [0, V) or equal *allowed (when allowed is not null). When divisor is not
// null (an f32 scalar on the ids' device) it receives max(1, number of ids that are not *allowed):
// the count a mean over real tokens divides by (1 when every id is ignored, so the mean is 0).
template <Backend B>
void check_token_ids(const int32_t* ids, int64_t N, int64_t V, const int32_t* allowed,
                     float* divisor, TokenSite site);

}  // namespace tiller::kernels
