// Catch2 entry point for the [cuda] suite. Listing always works (ctest discovers the cases at
// build time); running a case without a CUDA device prints why and exits 77, which ctest reports
// as "Skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>

#include "core/tensor/tensor.h"

int main(int argc, char* argv[]) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--list", 6) == 0) listing = true;
  if (!listing && !tiller::cuda_available()) {
    std::printf("SKIPPED: no CUDA device on this machine (or tiller built without CUDA)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
