// Fuzz harness: safetensors::parse on arbitrary bytes (the whole file as held in memory; load() is
// one mmap around the same call). Every parsed tensor is read back whole, so a byte range that
// passed validation but leaves the buffer is an ASan report.
#include "core/io/safetensors.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

void safetensors_target(std::string_view input) {
  expect_result_or_error([&] {
    safetensors::Contents contents = safetensors::parse(input.data(), input.size(), "fuzz");
    for (const auto& [name, tensor] : contents.tensors) {
      volatile size_t sum = 0;
      const auto* bytes = static_cast<const unsigned char*>(tensor.data_ptr());
      for (size_t i = 0; i < tensor.nbytes(); ++i) sum = sum + bytes[i];
    }
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::safetensors_target)
