// Timing and table helpers shared by the CPU benchmarks.
//
// time_median runs `fn` for `warmup` untimed iterations, then `runs` timed ones and returns the
// median in seconds: the median resists the other process that wakes up mid-run on a 2-core box.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace tiller::bench {

template <typename Fn>
double time_median(Fn&& fn, int warmup = 2, int runs = 7) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> seconds;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace tiller::bench
