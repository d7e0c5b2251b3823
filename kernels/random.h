// Counter-based random numbers: the value at index i depends only on (seed, i).
//
// This is what makes "the same seed gives the same numbers on every backend and thread count"
// true: a CPU loop split across OpenMP threads and a CUDA grid compute element i the same way.
// The mixer is a 64-bit SplitMix finaliser over (seed, counter); normals use Box-Muller on two
// uniforms drawn from counters 2i and 2i+1.
#pragma once

#include <math.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace tiller::random {

TILLER_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

TILLER_HD uint64_t bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ull) ^ (counter * 0xd1b54a32d192ed03ull));
}

// Uniform in (0, 1): 24 random bits, offset by half a step so log() is always finite.
TILLER_HD float uniform(uint64_t seed, uint64_t counter) {
  return (static_cast<float>(bits(seed, counter) >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// Standard normal via Box-Muller from counters 2i and 2i+1. Host and device may differ by an ulp
// in logf/cosf; everything else is bit-identical.
TILLER_HD float normal(uint64_t seed, uint64_t index) {
  float u1 = uniform(seed, 2 * index);
  float u2 = uniform(seed, 2 * index + 1);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

}  // namespace tiller::random
