// Helpers for the data-parallel suite (tests/dist), which runs under mpirun -np 2 and alone.
//
// Each test builds the world communicator (MPI when launched with more than one rank, else a
// single process) and, where it compares against "the 1-process run", trains that reference
// inside the same process with a single-process communicator: every rank computes it, so each
// rank checks its own copy of the weights against it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/data/shards.h"
#include "core/dist/communicator.h"
#include "rl/trainers/pretrain.h"

namespace tiller::testing {

inline std::shared_ptr<dist::Communicator> world() {
  static std::shared_ptr<dist::Communicator> comm =
      dist::communicator_from_environment(Device::cpu());
  return comm;
}

// A directory every rank sees (named after rank 0's process id), removed by rank 0 at the end.
class SharedDir {
 public:
  SharedDir() {
    static int counter = 0;
    Tensor id = Tensor::from_ints({static_cast<int32_t>(::getpid()), counter++}, {2});
    world()->broadcast(id, 0);
    auto ids = id.to_int_vector();
    path_ = std::filesystem::temp_directory_path() /
            ("tiller-dist-" + std::to_string(ids[0]) + "-" + std::to_string(ids[1]));
    if (world()->is_leader()) {
      std::filesystem::remove_all(path_);
      std::filesystem::create_directories(path_);
    }
    world()->barrier();
  }
  ~SharedDir() {
    try {
      world()->barrier();
    } catch (...) {
    }
    std::error_code ignored;
    if (world()->is_leader()) std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A token shard of `count` ids below `vocab` with some structure to learn, written by rank 0.
inline std::string write_tiny_shard(const SharedDir& dir, const std::string& name, int64_t count,
                                    int vocab, uint32_t seed) {
  const auto path = dir.path() / name;
  if (world()->is_leader()) {
    std::vector<TokenId> tokens(static_cast<size_t>(count));
    uint32_t state = seed;
    for (auto& token : tokens) {
      state = state * 1664525u + 1013904223u;
      token = static_cast<TokenId>((state >> 16) % static_cast<uint32_t>(vocab / 2) * 2 %
                                   static_cast<uint32_t>(vocab));
    }
    write_token_shard(path, tokens, 2);
  }
  world()->barrier();
  return path.string();
}

inline rl::PretrainConfig tiny_pretrain(ModelFamily family) {
  rl::PretrainConfig config;
  config.model = family == ModelFamily::gpt2 ? ModelConfig::gpt2(64, 2, 2, 32, 32)
                                             : ModelConfig::llama(64, 2, 4, 2, 32, 64, 32);
  config.batch_size = 4;  // global: 2 rows per rank on 2 ranks
  config.seq_len = 16;
  config.steps = 4;
  config.optimizer.schedule.peak_lr = 3e-3f;
  config.optimizer.schedule.min_lr = 3e-4f;
  config.optimizer.schedule.warmup_steps = 1;
  config.optimizer.weight_decay = 0.1f;
  config.eval_every = 0;
  config.log_every = 0;
  config.seed = 5;
  return config;
}

inline std::vector<std::vector<float>> weights_of(Transformer& model) {
  std::vector<std::vector<float>> out;
  for (const auto& p : model.parameters()) out.push_back(p.tensor.to_vector());
  return out;
}

// Largest over tensors of max |a - b| / max |a|: the error relative to each tensor's scale.
inline double max_relative_difference(const std::vector<std::vector<float>>& a,
                                      const std::vector<std::vector<float>>& b) {
  double worst = 0.0;
  for (size_t t = 0; t < a.size(); ++t) {
    double scale = 0.0, diff = 0.0;
    for (size_t i = 0; i < a[t].size(); ++i) {
      scale = std::max(scale, static_cast<double>(std::fabs(a[t][i])));
      diff = std::max(diff, static_cast<double>(std::fabs(a[t][i] - b[t][i])));
    }
    if (scale > 0) worst = std::max(worst, diff / scale);
  }
  return worst;
}

}  // namespace tiller::testing
