// Counter-based random numbers: the value at index i depends only on (seed, i). This header is
// tiller's one source of randomness: kernels draw by index; host code (data order, the world
// generator, sampling seeds) draws from a Stream over the same mixer, and every shuffle is
// `shuffle` / `permutation` below — never std::shuffle or a std:: engine, whose outputs differ
// between standard libraries.
//
// This is what makes "the same seed gives the same numbers on every backend and thread count"
// true: a CPU loop split across OpenMP threads and a CUDA grid compute element i the same way.
// The mixer is a 64-bit SplitMix finaliser over (seed, counter); normals use Box-Muller on two
// uniforms drawn from counters 2i and 2i+1.
#pragma once

#include <math.h>

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

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

// A seed for one named purpose or numbered sub-stream of `seed` ("epoch 3", "world corpus"), so
// streams that draw different amounts never shift each other.
inline uint64_t derive(uint64_t seed, uint64_t stream) {
  return bits(seed ^ 0x5eedf00dcafef00dull, stream);
}
inline uint64_t derive(uint64_t seed, std::string_view purpose) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a of the purpose
  for (char c : purpose) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return derive(seed, hash);
}

// Sequential draws on the host: value k of a stream is bits(seed, k).
class Stream {
 public:
  explicit Stream(uint64_t seed) : seed_(seed) {}
  uint64_t next() { return bits(seed_, counter_++); }
  // Uniform in [0, bound) by rejection: unbiased, identical on every platform.
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound: the biased low values
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  uint64_t counter() const { return counter_; }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

// Fisher-Yates driven by `stream`.
template <typename T>
void shuffle(std::vector<T>& items, Stream& stream) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[stream.below(i)]);
}

// A seeded permutation of [0, n): the one way tiller orders data (loader windows, SFT rows,
// preference pairs, PPO prompts and minibatches).
inline std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  Stream stream(seed);
  shuffle(order, stream);
  return order;
}

// The order of epoch `epoch` of n items under `seed`: each epoch is an independent permutation.
inline std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  return permutation(n, derive(seed, static_cast<uint64_t>(epoch)));
}

}  // namespace tiller::random
