// make_world: writes every data file of the built-in task world (examples/WORLD.md) into a folder,
// so the pretraining, SFT, reward-model and PPO examples can start from files.
//
//   make_world --out data/world --seed 1
//
// Output: corpus.txt (documents joined by <|endoftext|>), sft.jsonl ({"messages": [...]}),
// preferences_train.jsonl and preferences_heldout.jsonl ({"prompt", "chosen", "rejected"}),
// eval.jsonl (held-out prompts with their reference answers), sft_pool.jsonl (the large noisy SFT
// pool for curation, {"messages": [...]}) and sft_pool_labels.jsonl (what noise each pool row
// carries: for reports only, a curator must not read it). The same seed always gives the same
// bytes, so a run can be reproduced from its command line alone.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "core/world/world.h"
#include "kernels/error.h"

int main(int argc, char** argv) {
  CLI::App app{"Write the tiller task world's corpus, SFT, preference and eval files"};
  std::string out = "world";
  tiller::WorldConfig config;
  app.add_option("--out", out, "folder to write into (created if missing)");
  app.add_option("--seed", config.seed, "world seed");
  app.add_option("--entities", config.num_entities, "number of invented creatures");
  app.add_option("--mentions", config.mentions_per_fact, "times the corpus states each fact");
  app.add_option("--sft", config.num_sft_examples, "number of SFT chats");
  app.add_option("--pool", config.num_pool_examples, "rows of the noisy SFT pool (0: none)");
  app.add_option("--eval", config.num_eval_prompts, "number of held-out eval prompts");
  app.add_option("--preferences", config.num_preference_pairs, "preference pairs (train+held-out)");
  CLI11_PARSE(app, argc, argv);

  try {
    namespace world = tiller::world;
    tiller::World generated(config);
    std::filesystem::create_directories(out);
    std::filesystem::path dir(out);
    std::string corpus = generated.pretraining_corpus();
    world::write_text((dir / "corpus.txt").string(), corpus);
    world::write_sft_jsonl((dir / "sft.jsonl").string(), generated.sft_examples());
    auto train = generated.preference_pairs(world::Split::kTrain);
    auto heldout = generated.preference_pairs(world::Split::kHeldOut);
    world::write_preferences_jsonl((dir / "preferences_train.jsonl").string(), train);
    world::write_preferences_jsonl((dir / "preferences_heldout.jsonl").string(), heldout);
    world::write_eval_jsonl((dir / "eval.jsonl").string(), generated.eval_prompts());
    const std::vector<world::PoolRow> pool = generated.noisy_sft_pool();
    world::write_pool_jsonl((dir / "sft_pool.jsonl").string(), pool);
    world::write_pool_labels_jsonl((dir / "sft_pool_labels.jsonl").string(), pool);
    std::cout << "wrote " << dir.string() << ": corpus " << corpus.size() << " bytes, "
              << generated.sft_examples().size() << " SFT chats, " << train.size() << " + "
              << heldout.size() << " preference pairs, " << generated.eval_prompts().size()
              << " eval prompts, " << pool.size() << " noisy pool chats\n";
  } catch (const std::exception& error) {
    std::cerr << "make_world: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
