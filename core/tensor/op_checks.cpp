// Host-side validation shared by ops (see core/op_checks.h).
#include "core/tensor/op_checks.h"

namespace tiller::detail {

int64_t check_token_range(const char* op, const char* name, const Tensor& ids, int64_t V,
                          const int32_t* allowed) {
  std::vector<int32_t> host = ids.to_int_vector();
  int64_t real_tokens = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    int32_t id = host[i];
    if (allowed && id == *allowed) continue;
    TILLER_CHECK(id >= 0 && id < V, "{}: {}[{}] = {} is out of range [0, {})", op, name, i, id, V);
    ++real_tokens;
  }
  return real_tokens;
}

}  // namespace tiller::detail
