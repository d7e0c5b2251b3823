// Diversity selection to a budget, on given embeddings (one row of `dim` floats per item).
//
//   k_center_greedy  farthest point first (Sener & Savarese 2018, "core-set"): start from `first`,
//                    then repeatedly add the item whose Euclidean distance to its nearest selected
//                    item is largest (ties: the lowest index), until k items.
//   deita_select     DEITA's score-first filter (Liu et al. 2024, "What Makes Good Data for
//                    Alignment", θ = 0.9 their default): walk items in `order` (best score first)
//                    and keep one unless its cosine similarity to an already kept item exceeds θ,
//                    until the budget; it may return fewer when the pool runs out.
//   k_means +        Clustering and Ranking (CaR, Ge et al. 2024): group the rows into k clusters,
//   cluster_round_robin  then take each cluster's best rows, an equal share per cluster. Here the
//                    share is dealt round by round: every cluster gives its next best row (the
//                    clusters in the order of their best row), until the budget; a cluster that
//                    runs out leaves its share to the others. The budget is met whenever the pool
//                    is at least that large, and a task that is a small part of the pool keeps
//                    its share instead of losing it to the pool's skew or to a similarity cut
//                    (rows of one template sit close together however different their facts).
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

// Lloyd's k-means on the rows (Euclidean), seeded by k-means++ (Arthur & Vassilvitskii 2007:
// each next centre drawn with probability proportional to the squared distance to the nearest
// centre so far) from a std::mt19937_64 seeded with `seed`; at most `max_iterations` rounds, fewer
// when no assignment changes. A cluster left empty takes the row farthest from its centre.
// Returns each row's cluster in [0, min(k, n)); the same input and seed give the same output.
std::vector<int32_t> k_means(const Embeddings& embeddings, int64_t k, uint64_t seed,
                             int max_iterations = 100);

// The CaR deal above: `order` lists candidates best first (indices into `cluster`); returns at
// most `budget` of them, in the order they were taken.
std::vector<int64_t> cluster_round_robin(const std::vector<int32_t>& cluster,
                                         const std::vector<int64_t>& order, int64_t budget);

// Mean over `selected` of the cosine distance (1 - cos) to its nearest other selected item.
double mean_nearest_neighbour_distance(const Embeddings& embeddings,
                                       const std::vector<int64_t>& selected);

// Feature hashing of a normalised text's words and word bigrams into `dim` buckets (crc32 of the
// gram picks the bucket and, by its top bit, the sign), L2-normalised. A zero text stays zero.
std::vector<float> hashed_bag_of_words(const std::string& normalised, int64_t dim = 256);

}  // namespace tiller::data
