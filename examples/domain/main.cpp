// domain: domain-adaptive continued pretraining on the world's "new region", with and without
// replay of the original corpus, measuring what the model learns and what it forgets.
//
//   pretrain --out runs/pretrain                 # (or the pipeline's runs/pipeline/pretrain)
//   domain --base runs/pretrain --out runs/domain
//
// The base run's model, tokenizer and training shard (<base>/model, <base>/data/tokenizer.json,
// <base>/data/train.bin) are the starting point and the replay source. The new region
// (core/world/world_region.h: creatures and towns absent from the original world) gets a corpus of
// its own, tokenised with the base tokenizer (every fifth document held out for the validation
// loss; the probes ask about every fact, held-out documents or not). Two arms continue
// pretraining from the same base for --steps steps with the same schedule: "no replay" (domain
// text only) and "replay" (round(--replay-fraction x batch) rows of every batch from the original
// corpus). Every --probe-every steps both models take the multiple-choice likelihood probe
// (rl/reports/fact_probe.h) on the region's facts (learning) and on as many original-world facts
// (forgetting), 4 choices each (chance 25%).
// Outputs in --out: domain.json (every probe), domain.md (the table), probes.jsonl and
// domain_accuracy.png (accuracy vs step, one line per arm x fact set).
// The world flags must be those the base was pretrained with.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "core/io/atomic_file.h"
#include "core/world/world_region.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "rl/data/pretrain_data.h"
#include "rl/reports/fact_probe.h"
#include "rl/reports/plot.h"
#include "rl/trainers/pretrain.h"

namespace fs = std::filesystem;
using namespace tiller;

namespace {

struct Options {
  fs::path base = "runs/pretrain";
  fs::path out = "runs/domain";
  int64_t steps = 80, probe_every = 20, batch = 8, seq_len = 128;
  float lr = 1e-3f;
  double replay_fraction = 0.25;
  int region_entities = 40, mentions = 4, old_facts = 200;
  uint64_t seed = 0;
  WorldConfig world;
};

struct ProbeSets {
  std::vector<rl::ChoiceQuestion> region, original;
};

ProbeSets probe_sets(const World& world, const world::Region& region, int old_facts,
                     uint64_t seed) {
  auto region_values = [&](world::TaskType task) {
    return world::fact_values(task, region.towns());
  };
  auto world_values = [&](world::TaskType task) { return world::fact_values(task, world.towns()); };
  std::vector<world::Expected> region_facts = region.facts();
  std::vector<world::Expected> original = world::entity_facts(world);
  random::Stream stream(seed);
  random::shuffle(original, stream);
  original.resize(std::min(original.size(), static_cast<size_t>(old_facts)));
  return {rl::choice_questions(region_facts, region_values, 4, seed),
          rl::choice_questions(original, world_values, 4, seed + 1)};
}

nlohmann::json probe(Transformer& model, const Tokenizer& tokenizer, const ProbeSets& sets,
                     const std::string& arm, int64_t step, double loss) {
  auto region = rl::run_choice_probe(model, tokenizer, sets.region);
  auto original = rl::run_choice_probe(model, tokenizer, sets.original);
  nlohmann::json record = {{"stage", arm},
                           {"step", step},
                           {"region_accuracy", region.accuracy},
                           {"original_accuracy", original.accuracy},
                           {"region_logprob", region.mean_true_logprob},
                           {"original_logprob", original.mean_true_logprob}};
  if (!std::isnan(loss)) record["loss"] = loss;
  std::cout << fmt::format("[{}] step {:4d}  region facts {:5.1f}%  original facts {:5.1f}%{}\n",
                           arm, step, 100 * region.accuracy, 100 * original.accuracy,
                           std::isnan(loss) ? "" : fmt::format("  loss {:.3f}", loss))
            << std::flush;
  return record;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Continued pretraining on the world's new region: learning vs forgetting"};
  Options o;
  bool tiny = false;
  app.add_option("--base", o.base, "a pretrain run folder (model/ and data/)")
      ->capture_default_str();
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  app.add_option("--steps", o.steps, "continued-pretraining steps per arm")->capture_default_str();
  app.add_option("--probe-every", o.probe_every, "steps between probes")->capture_default_str();
  app.add_option("--batch", o.batch, "B")->capture_default_str();
  app.add_option("--seq-len", o.seq_len, "T (at most the base's max_seq_len)")
      ->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate (cosine to 10%, 10% warmup)")
      ->capture_default_str();
  app.add_option("--replay-fraction", o.replay_fraction,
                 "share of each batch from the original corpus")
      ->capture_default_str();
  app.add_option("--region-entities", o.region_entities, "creatures of the new region")
      ->capture_default_str();
  app.add_option("--mentions", o.mentions, "profiles per region creature")->capture_default_str();
  app.add_option("--old-facts", o.old_facts, "original facts probed for forgetting")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "data order and probe draws")->capture_default_str();
  app.add_option("--world-seed", o.world.seed, "the base's world seed")->capture_default_str();
  app.add_option("--entities", o.world.num_entities, "the base's world size")
      ->capture_default_str();
  app.add_flag("--tiny", tiny, "seconds-scale smoke run (ctest)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (tiny) {
      o.steps = 4, o.probe_every = 2, o.batch = 4, o.seq_len = 32, o.region_entities = 8;
      o.mentions = 2, o.old_facts = 16;
    }
    const auto start = std::chrono::steady_clock::now();
    const fs::path model_dir = o.base / "model";
    const fs::path replay_shard = o.base / "data" / "train.bin";
    TILLER_CHECK(fs::exists(model_dir / "config.json") && fs::exists(replay_shard),
                 "domain: {} is not a pretrain run folder (needs model/config.json and "
                 "data/train.bin); run `pretrain --out {}` first",
                 o.base.string(), o.base.string());
    const Tokenizer tokenizer = Tokenizer::load(model_dir.string());
    const World world(o.world);
    const world::Region region(
        world, {.num_entities = o.region_entities, .mentions_per_fact = o.mentions});

    // The region corpus, tokenised with the base tokenizer.
    const std::string corpus = region.corpus();
    const auto documents = rl::split_documents(corpus);
    const auto shards =
        rl::write_corpus_shards(documents, tokenizer, o.out / "data", /*val_fraction=*/0.2);
    std::cout << "new region: " << region.entities().size() << " creatures, "
              << region.towns().size() << " towns, " << documents.size() << " documents, "
              << shards.train_tokens << " train tokens\n";
    const ProbeSets sets = probe_sets(world, region, o.old_facts, o.seed);

    rl::PretrainConfig config;
    config.model = ModelConfig::from_hf_json(read_file_bytes(model_dir / "config.json"));
    config.init_from = model_dir.string();
    config.batch_size = o.batch;
    config.seq_len = std::min(o.seq_len, config.model.max_seq_len);
    config.steps = o.steps;
    config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                                 .peak_lr = o.lr,
                                 .min_lr = o.lr / 10,
                                 .warmup_steps = std::max<int64_t>(1, o.steps / 10)};
    config.log_every = 0;
    config.eval_batches = 2;
    config.seed = o.seed;

    nlohmann::json records = nlohmann::json::array();
    {
      Transformer base = Transformer::from_pretrained(model_dir);
      records.push_back(probe(base, tokenizer, sets, "base", 0, NAN));
    }
    const std::vector<std::pair<std::string, double>> arms = {
        {"no replay", 0.0}, {fmt::format("replay {:g}", o.replay_fraction), o.replay_fraction}};
    for (const auto& [arm, fraction] : arms) {
      rl::PretrainConfig arm_config = config;
      if (fraction > 0) {
        arm_config.replay_shards = {replay_shard.string()};
        arm_config.replay_fraction = fraction;
      }
      rl::Pretrainer trainer(arm_config, shards.train_shards, shards.val_shards, tokenizer);
      records.push_back(probe(trainer.model(), tokenizer, sets, arm, 0, NAN));
      double loss_sum = 0;
      int64_t losses = 0;
      while (trainer.step() < o.steps) {
        loss_sum += trainer.train_step().loss;
        ++losses;
        if (trainer.step() % o.probe_every == 0 || trainer.step() == o.steps) {
          records.push_back(
              probe(trainer.model(), tokenizer, sets, arm, trainer.step(), loss_sum / losses));
          loss_sum = 0, losses = 0;
        }
      }
      records.back()["region_val_loss"] = trainer.evaluate();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // Report: JSON, markdown table, probe records and the plot.
    std::string lines;
    for (const auto& record : records) lines += record.dump() + "\n";
    write_file_atomic(o.out / "probes.jsonl", [&](FileSink& sink) { sink.write(lines); });
    nlohmann::json report = {{"base", o.base.string()},
                             {"steps", o.steps},
                             {"batch", o.batch},
                             {"seq_len", config.seq_len},
                             {"lr", o.lr},
                             {"replay_fraction", o.replay_fraction},
                             {"region_facts", sets.region.size()},
                             {"original_facts", sets.original.size()},
                             {"choices", 4},
                             {"probes", records},
                             {"seconds", seconds}};
    write_file_atomic(o.out / "domain.json",
                      [&](FileSink& sink) { sink.write(report.dump(2) + "\n"); });
    std::string md = fmt::format(
        "# Continued pretraining on the new region\n\n"
        "Multiple-choice likelihood probe, 4 choices (chance 25%): {} new-region facts (learning) "
        "and {} original-world facts (forgetting). {} steps of {} x {} tokens per arm, lr {:g}.\n\n"
        "| arm | step | region facts | original facts | train loss |\n|---|---|---|---|---|\n",
        sets.region.size(), sets.original.size(), o.steps, o.batch, config.seq_len, o.lr);
    for (const auto& r : records) {
      md += fmt::format("| {} | {} | {:.1f}% | {:.1f}% | {} |\n", r["stage"].get<std::string>(),
                        r["step"].get<int64_t>(), 100 * r["region_accuracy"].get<double>(),
                        100 * r["original_accuracy"].get<double>(),
                        r.contains("loss") ? fmt::format("{:.3f}", r["loss"].get<double>()) : "");
    }
    md += fmt::format("\n{:.0f} s in all (data, probes and both arms)\n", seconds);
    write_file_atomic(o.out / "domain.md", [&](FileSink& sink) { sink.write(md); });
    std::vector<rl::PlotSeries> series;
    for (const auto& [arm, fraction] : arms) {
      series.push_back({.label = arm + ": region facts",
                        .metrics_path = o.out / "probes.jsonl",
                        .key = "region_accuracy",
                        .stage = arm});
      series.push_back({.label = arm + ": original facts",
                        .metrics_path = o.out / "probes.jsonl",
                        .key = "original_accuracy",
                        .stage = arm});
    }
    auto plot = rl::plot_metrics(series, o.out / "domain_accuracy.png",
                                 {.title = "continued pretraining: learning vs forgetting",
                                  .x_label = "continued-pretraining step",
                                  .y_label = "probe accuracy (4 choices)"});
    std::cout << "\n" << md << plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << "domain: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
