// Dropout under data parallelism: each rank needs masks of its own. Left alone, every rank's
// generator starts from the same (seed, offset) and advances by the same counts, so rank r would
// drop exactly the units rank 0 drops, on different rows: correlated noise across the global
// batch. Rank r > 0 therefore draws from random::derive(seed, r) at rank 0's offset. The
// checkpoint holds rank 0's (seed, offset) and every rank re-derives its stream after loading it,
// so a resume on any number of ranks restores every rank's masks.
// With dropout > 0 a data-parallel run is a valid run, but not the single-process run (the masks
// differ); the equality tests run without dropout.
#pragma once

#include "core/dist/communicator.h"
#include "core/models/model.h"
#include "kernels/random.h"

namespace tiller::rl {

// Call after the generator holds rank 0's state: at construction and after a resume.
inline void use_rank_dropout_stream(Transformer& model, const dist::Communicator& communicator) {
  if (communicator.rank() == 0) return;
  Generator& generator = model.dropout_generator();
  generator.seed = random::derive(generator.seed, static_cast<uint64_t>(communicator.rank()));
}

}  // namespace tiller::rl
