// TokenLoader (see core/loader.h for the windowing, sharding and resume contract).
//
// The permutation of an epoch is computed once and cached; a window list of a billion-token
// corpus at T = 1024 is ~1M entries, so recomputing it per epoch is cheap and storing one is small.
#include "core/data/loader.h"

#include <numeric>

#include "kernels/error.h"
#include "kernels/random.h"

namespace tiller {

TokenLoader::TokenLoader(const std::vector<std::string>& shard_paths, TokenLoaderOptions options)
    : options_(options) {
  TILLER_CHECK(!shard_paths.empty(), "TokenLoader: no shard paths given");
  TILLER_CHECK(options.batch_size > 0 && options.seq_len > 0,
               "TokenLoader: batch_size {} and seq_len {} must be positive", options.batch_size,
               options.seq_len);
  TILLER_CHECK(options.world_size > 0 && options.rank >= 0 && options.rank < options.world_size,
               "TokenLoader: rank {} is not in [0, world_size {})", options.rank,
               options.world_size);
  const int64_t T = options.seq_len;
  for (const std::string& path : shard_paths) {
    shards_.emplace_back(path);
    const TokenShard& shard = shards_.back();
    auto shard_index = static_cast<int32_t>(shards_.size() - 1);
    for (int64_t offset = 0; offset + T + 1 <= shard.size(); offset += T) {
      window_starts_.push_back({shard_index, offset});
    }
  }
  const int64_t global_batch = options.batch_size * options.world_size;
  steps_per_epoch_ = windows_per_epoch() / global_batch;
  TILLER_CHECK(steps_per_epoch_ > 0,
               "TokenLoader: the shards hold {} windows of {} tokens, fewer than one global batch "
               "of {} (batch_size {} x world_size {})",
               windows_per_epoch(), T + 1, global_batch, options.batch_size, options.world_size);
}

const std::vector<int64_t>& TokenLoader::order_for(int64_t epoch) const {
  if (cached_order_epoch_ == epoch) return cached_order_;
  cached_order_.resize(window_starts_.size());
  std::iota(cached_order_.begin(), cached_order_.end(), int64_t{0});
  if (options_.shuffle) {
    cached_order_ =
        random::epoch_order(static_cast<int64_t>(window_starts_.size()), options_.seed, epoch);
  }
  cached_order_epoch_ = epoch;
  return cached_order_;
}

std::vector<int64_t> TokenLoader::window_ids(int64_t epoch, int64_t step) const {
  TILLER_CHECK(epoch >= 0 && step >= 0 && step < steps_per_epoch_,
               "TokenLoader: step {} of epoch {} does not exist ({} steps per epoch)", step, epoch,
               steps_per_epoch_);
  const std::vector<int64_t>& order = order_for(epoch);
  const int64_t B = options_.batch_size;
  const int64_t first = (step * options_.world_size + options_.rank) * B;
  return {order.begin() + first, order.begin() + first + B};
}

TokenBatch TokenLoader::next() {
  if (cursor_ == steps_per_epoch_) {
    ++epoch_;
    cursor_ = 0;
  }
  const int64_t B = options_.batch_size, T = options_.seq_len;
  std::vector<int64_t> rows = window_ids(epoch_, cursor_);
  TokenBatch batch{Tensor::empty({B, T}, {.dtype = DType::i32}),
                   Tensor::empty({B, T}, {.dtype = DType::i32})};
  auto* inputs = batch.inputs.data<int32_t>();    // (B, T)
  auto* targets = batch.targets.data<int32_t>();  // (B, T)
  std::vector<TokenId> window(T + 1);
  for (int64_t b = 0; b < B; ++b) {
    const WindowStart& start = window_starts_[rows[b]];
    shards_[start.shard].read(start.offset, T + 1, window.data());
    std::copy(window.begin(), window.end() - 1, inputs + b * T);
    std::copy(window.begin() + 1, window.end(), targets + b * T);
  }
  ++cursor_;
  return batch;
}

void TokenLoader::restore(const TokenLoaderState& state) {
  TILLER_CHECK(state.epoch >= 0 && state.cursor >= 0 && state.cursor <= steps_per_epoch_,
               "TokenLoader::restore: epoch {} cursor {} is not a position of this data ({} steps "
               "per epoch); were the shards or batch shape changed?",
               state.epoch, state.cursor, steps_per_epoch_);
  epoch_ = state.epoch;
  cursor_ = state.cursor;
  if (options_.seed != state.seed) cached_order_epoch_ = -1;
  options_.seed = state.seed;
}

}  // namespace tiller
