// Catch2 entry point for the [cuda] suite. Listing always works (ctest discovers the cases at
// build time); running a case without a CUDA device prints "SKIPPED: no CUDA device" and exits 77.
// ctest and bench/device-check report a case as skipped by that line, not by the exit code alone
// (Catch2 exits with the number of failed assertions, which can be 77).
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
