// Shared by the end-to-end CUDA benchmarks (train_gpt2.cu, generate.cu): whole-library runs
// through the public API (Transformer, AdamW, rl::generate) rather than single kernels.
//
// Design: an end-to-end call is long (tens of ms to seconds) and may synchronise with the host
// by itself (a gradient norm or sampled tokens cross to the host), so it is timed call by call
// with CUDA events recorded around it, after explicit warm-up calls — no input rotation, no
// run-count budget as in bench_common.cuh's time_it. The same method is in bench/torch_gpt2.py.
// Output: one JSON object per line with bench_common's field names (median_ms, tflops, gbps,
// bound, ceiling_*, pct_of_ceiling) so bench/compare.py can read it, plus end-to-end fields
// (tokens_per_s, mean_ms, ...). Mean times give throughput (what a long run sees); medians are
// printed beside them.
#pragma once

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "core/tensor/tensor.h"

namespace bench {

// NVIDIA H200 SXM datasheet, dense bf16 tensor-core peak (no sparsity), TFLOP/s.
constexpr double kH200DatasheetBf16Tflops = 989.0;

struct CallTimes {
  std::vector<double> ms;  // one per timed call, in call order

  double mean() const { return std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size(); }
  double median() const {
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    return sorted[sorted.size() / 2];
  }
  double min() const { return *std::min_element(ms.begin(), ms.end()); }
};

// Runs call() `warmup` times untimed, then `runs` times, each between two CUDA events. The host
// does not wait between timed calls (only at the end), so a call that never synchronises is
// measured back to back as in a real loop.
template <typename Call>
CallTimes time_calls(Call&& call, int warmup, int runs) {
  TILLER_CHECK(runs > 0, "time_calls: runs must be positive, got {}", runs);
  for (int i = 0; i < warmup; ++i) call();
  TILLER_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<cudaEvent_t> events(runs + 1);
  for (cudaEvent_t& event : events) TILLER_CUDA_CHECK(cudaEventCreate(&event));
  TILLER_CUDA_CHECK(cudaEventRecord(events[0]));
  for (int i = 0; i < runs; ++i) {
    call();
    TILLER_CUDA_CHECK(cudaEventRecord(events[i + 1]));
  }
  TILLER_CUDA_CHECK(cudaEventSynchronize(events[runs]));
  CallTimes times;
  for (int i = 0; i < runs; ++i) {
    float ms = 0.f;
    TILLER_CUDA_CHECK(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
    times.ms.push_back(ms);
  }
  for (cudaEvent_t& event : events) cudaEventDestroy(event);
  return times;
}

// Builds one JSON line field by field; numbers as %.6g, strings escaped for quotes/backslashes.
class JsonLine {
 public:
  JsonLine& add(const std::string& key, double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.6g", value);
    return raw(key, text);
  }
  JsonLine& add(const std::string& key, const std::string& value) {
    std::string escaped;
    for (char ch : value) {
      if (ch == '"' || ch == '\\') escaped += '\\';
      escaped += ch == '\n' ? ' ' : ch;
    }
    return raw(key, "\"" + escaped + "\"");
  }
  JsonLine& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  void print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  JsonLine& raw(const std::string& key, const std::string& value) {
    if (!body_.empty()) body_ += ',';
    body_ += "\"" + key + "\":" + value;
    return *this;
  }
  std::string body_;
};

// The fields every end-to-end line starts with: source, impl, kernel, shape and the call times.
inline JsonLine end_to_end_line(const std::string& kernel, const std::string& shape,
                                const CallTimes& times) {
  JsonLine line;
  line.add("source", "tiller")
      .add("impl", "tiller")
      .add("kernel", kernel)
      .add("shape", shape)
      .add("median_ms", times.median())
      .add("mean_ms", times.mean())
      .add("min_ms", times.min())
      .add("runs", static_cast<double>(times.ms.size()));
  return line;
}

// n token ids uniform in [0, vocab), from tiller's seeded counter-based generator.
inline std::vector<int32_t> random_token_ids(int64_t n, int64_t vocab, uint64_t seed) {
  tiller::Generator gen(seed);
  std::vector<float> uniform = tiller::Tensor::rand({n}, gen).to_vector();
  std::vector<int32_t> ids(uniform.size());
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>(
        std::min<int64_t>(static_cast<int64_t>(uniform[i] * vocab), vocab - 1));
  return ids;
}

// "--name value" from argv as an integer, or `fallback` when absent.
inline int int_flag(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::stoi(argv[i + 1]);
  return fallback;
}

}  // namespace bench
