// CPU token-id range check (kernels/token_check.h): one scan, the first bad id throws.
#include "kernels/token_check.h"

#include <algorithm>

#include "kernels/error.h"

namespace tiller::kernels {

template <>
void check_token_ids<Backend::cpu>(const int32_t* ids, int64_t N, int64_t V,
                                   const int32_t* allowed, float* divisor, TokenSite site) {
  int64_t real_tokens = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int32_t id = ids[i];
    if (allowed != nullptr && id == *allowed) continue;
    TILLER_CHECK(id >= 0 && id < V, "{}: {}[{}] = {} is out of range [0, {})", site.op, site.name,
                 i, id, V);
    ++real_tokens;
  }
  if (divisor != nullptr) *divisor = static_cast<float>(std::max<int64_t>(real_tokens, 1));
}

}  // namespace tiller::kernels
