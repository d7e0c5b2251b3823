// A "new region" of the task world: creatures and towns absent from the original world, with a
// pretraining corpus of their own — the domain corpus of the continued-pretraining experiment
// (examples/domain).
//
// Design choices a reader must keep:
// - Disjoint by construction: region names are built from onsets whose first letters (C, H, J, W,
//   Y and Qu) no original name or town starts with, so no region name equals an original one, and
//   the region corpus mentions region creatures and towns only. The original corpus therefore
//   never names a region creature and the region corpus never names an original one
//   (tests/test_world_region.cpp checks both on the words of both corpora).
// - Same attribute pools (colours, foods, leg counts, ages 2..95) and the same statement
//   templates as the original world, so a fact is new only in who it is about: what the model must
//   learn is the region, not a new vocabulary of values.
// - Deterministic from (RegionConfig, the original world's names); randomness from world_detail's
//   Rng (kernels/random.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/world/world.h"

namespace tiller::world {

struct RegionConfig {
  uint64_t seed = 7;
  int num_entities = 40;
  int num_towns = 4;
  int mentions_per_fact = 4;  // profiles per creature (the first in canonical sentences)
};

// The tasks whose facts the region states: every entity task except spelling and capitals (those
// follow from the name alone).
const std::vector<TaskType>& region_fact_tasks();

class Region {
 public:
  Region(const World& original, RegionConfig config = {});

  const RegionConfig& config() const { return config_; }
  const std::vector<Entity>& entities() const { return entities_; }
  const std::vector<std::string>& towns() const { return towns_; }
  // Documents (profiles, quiz sheets, town rosters) joined by kEndOfText, stating every fact of
  // facts() in its canonical sentence at least once.
  std::string corpus() const;
  // Every (creature, task) fact of the region, for probes.
  std::vector<Expected> facts() const;

 private:
  RegionConfig config_;
  std::vector<std::string> towns_;
  std::vector<Entity> entities_;
};

// The same facts of the original world's creatures (the forgetting side of the experiment).
std::vector<Expected> entity_facts(const World& world);

// Every value a fact of `task` (one of region_fact_tasks()) can take, home towns from `towns`:
// the distractors of a multiple-choice probe (rl/reports/fact_probe.h).
std::vector<std::string> fact_values(TaskType task, const std::vector<std::string>& towns);

}  // namespace tiller::world
