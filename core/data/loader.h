// TokenLoader: next-token-prediction batches from token shards.
//
// Each shard is cut into windows of T+1 tokens with stride T (window w of a shard covers tokens
// [w*T, w*T + T + 1)), so every token except a shard's first is a target exactly once per epoch;
// windows never cross shards and a shard's last < T tokens are left out. The windows of all
// shards are numbered in shard order; each epoch visits them in a permutation drawn from
// (seed, epoch) by random::permutation (kernels/random.h, the project's one shuffle), so the order
// is the same with any compiler or standard library.
//
// Distributed: one step consumes a global batch of world_size * B consecutive windows of the
// permutation; rank r takes windows [r*B, (r+1)*B) of it. Ranks therefore see disjoint windows,
// and together cover the epoch except the tail that does not fill a global batch (dropped, so all
// ranks take the same number of steps).
//
// Resume: state() is (epoch, cursor = steps taken in this epoch, seed); restore(state) on a loader
// over the same shards and batch shape continues with the identical batches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/data/shards.h"
#include "core/tensor/tensor.h"

namespace tiller {

struct TokenLoaderOptions {
  int64_t batch_size = 8;  // B, per rank
  int64_t seq_len = 1024;  // T
  uint64_t seed = 0;
  bool shuffle = true;  // false: windows in file order every epoch
  int rank = 0;
  int world_size = 1;
};

struct TokenLoaderState {
  int64_t epoch = 0;
  int64_t cursor = 0;  // steps already taken in `epoch`
  uint64_t seed = 0;
  bool operator==(const TokenLoaderState&) const = default;
};

struct TokenBatch {
  Tensor inputs;   // (B, T) i32, cpu
  Tensor targets;  // (B, T) i32, cpu: inputs shifted left by one token
};

class TokenLoader {
 public:
  TokenLoader(const std::vector<std::string>& shard_paths, TokenLoaderOptions options);

  TokenBatch next();  // rolls over into the next epoch (reshuffled) after the last step

  TokenLoaderState state() const { return {epoch_, cursor_, options_.seed}; }
  void restore(const TokenLoaderState& state);

  int64_t windows_per_epoch() const { return static_cast<int64_t>(window_starts_.size()); }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const TokenLoaderOptions& options() const { return options_; }

  // Global window ids of this rank's batch at `step` of `epoch` (the rows of that batch, in order).
  std::vector<int64_t> window_ids(int64_t epoch, int64_t step) const;

 private:
  struct WindowStart {
    int32_t shard;
    int64_t offset;
  };
  const std::vector<int64_t>& order_for(int64_t epoch) const;

  TokenLoaderOptions options_;
  std::vector<TokenShard> shards_;
  std::vector<WindowStart> window_starts_;
  int64_t steps_per_epoch_ = 0;
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;
  mutable int64_t cached_order_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace tiller
