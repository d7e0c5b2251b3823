// Diversity selection to a budget, on given embeddings (one row of `dim` floats per item).
//
//   k_center_greedy  farthest point first (Sener & Savarese 2018, "core-set"): start from `first`,
//                    then repeatedly add the item whose Euclidean distance to its nearest selected
//                    item is largest (ties: the lowest index), until k items.
//   deita_select     DEITA's score-first filter (Liu et al. 2024, "What Makes Good Data for
//                    Alignment", θ = 0.9 their default): walk items in `order` (best score first)
//                    and keep one unless its cosine similarity to an already kept item exceeds θ,
//                    until the budget; it may return fewer when the pool runs out.
// Embeddings from a model are mean-pooled final hidden states, L2-normalised (rl/data/
// curate_scores.h); without a model, hashed_bag_of_words gives a documented stand-in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tiller::data {

struct Embeddings {
  std::vector<float> values;  // (n, dim) row-major
  int64_t dim = 0;
  int64_t size() const { return dim == 0 ? 0 : static_cast<int64_t>(values.size()) / dim; }
  const float* row(int64_t i) const { return values.data() + i * dim; }
};

std::vector<int64_t> k_center_greedy(const Embeddings& embeddings, int64_t k, int64_t first = 0);
std::vector<int64_t> deita_select(const Embeddings& embeddings, const std::vector<int64_t>& order,
                                  int64_t budget, double threshold = 0.9);

// Mean over `selected` of the cosine distance (1 - cos) to its nearest other selected item.
double mean_nearest_neighbour_distance(const Embeddings& embeddings,
                                       const std::vector<int64_t>& selected);

// Feature hashing of a normalised text's words and word bigrams into `dim` buckets (crc32 of the
// gram picks the bucket and, by its top bit, the sign), L2-normalised. A zero text stays zero.
std::vector<float> hashed_bag_of_words(const std::string& normalised, int64_t dim = 256);

}  // namespace tiller::data
