// tokenize: text files in, a byte-level BPE tokenizer and train/val token shards out.
//
//   tokenize --input corpus.txt --out data/tok --vocab-size 2048            # train a tokenizer
//   tokenize --input a.txt b.txt --out data/tok --tokenizer gpt2/           # or load one
//
// Output: <out>/tokenizer.json (when trained), <out>/train_000000.bin ... and <out>/val_000000.bin.
// Each input file is a document and is followed by <|endoftext|>. Special-token text inside the
// files (e.g. <|endoftext|> separators written by make_world) is encoded as the special token
// unless --no-special-in-text is given.
//
// Files are streamed in chunks cut inside "X\nY" between '\n' and Y, where X and Y are printable
// ASCII: the pre-tokeniser makes that lone '\n' a piece of its own whether or not the text ends
// after it, so chunked encoding gives exactly the tokens of encoding the whole file. (A cut after
// a longer whitespace run would not: "\n\n" at the end of text is one piece, before "Y" two.)
// Chunks go to val while the val share of the tokens so far is below --val-fraction, otherwise to
// train, so the split is deterministic and spread over the data.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "kernels/error.h"
#include "core/data/shards.h"
#include "core/text/special_tokens.h"
#include "core/text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunkBytes = 64 << 10;     // small enough to spread the val split evenly
constexpr size_t kMaxUncutBytes = 64 << 20;  // text with no safe cut is split here regardless

// Length of the longest prefix of `text` that ends at a safe pre-token boundary (0 if none).
size_t safe_cut(std::string_view text) {
  auto printable = [](char c) { return c > ' ' && c < 0x7F; };
  for (size_t p = text.size(); p-- > 2;) {
    if (text[p - 1] == '\n' && printable(text[p]) && printable(text[p - 2])) return p;
  }
  return 0;
}

// Calls `on_chunk` with consecutive chunks of a file, each ending at a safe boundary.
template <typename OnChunk>
void for_each_chunk(const std::string& path, OnChunk on_chunk) {
  std::ifstream in(path, std::ios::binary);
  if (!in) tiller::fail("tokenize: cannot open input '{}'", path);
  std::string buffer;
  std::string block(kChunkBytes, '\0');
  while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
    buffer.append(block.data(), static_cast<size_t>(in.gcount()));
    size_t cut = safe_cut(buffer);
    if (cut == 0 && buffer.size() >= kMaxUncutBytes) cut = buffer.size();
    if (cut > 0) {
      on_chunk(std::string_view(buffer).substr(0, cut));
      buffer.erase(0, cut);
    }
  }
  if (in.bad()) tiller::fail("tokenize: read error in '{}'", path);
  if (!buffer.empty()) on_chunk(std::string_view(buffer));
}

// Adds text to the trainer without the special-token strings (they are never merged into).
void add_training_text(tiller::BpeTrainer& trainer, std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = std::string_view::npos, length = 0;
    for (std::string_view special : tiller::special_tokens::kAll) {
      size_t at = text.find(special, pos);
      if (at < next) next = at, length = special.size();
    }
    trainer.add_text(text.substr(pos, next == std::string_view::npos ? next : next - pos));
    if (next == std::string_view::npos) break;
    pos = next + length;
  }
}

class ShardSink {
 public:
  ShardSink(std::filesystem::path dir, std::string prefix, int width, int64_t shard_tokens)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), width_(width), limit_(shard_tokens) {}

  void append(const std::vector<tiller::TokenId>& ids) {
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    total_ += static_cast<int64_t>(ids.size());
    while (static_cast<int64_t>(tokens_.size()) >= limit_) flush(limit_);
  }
  void finish() {
    if (!tokens_.empty() || written_ == 0) flush(static_cast<int64_t>(tokens_.size()));
  }
  int64_t total() const { return total_; }
  int shards_written() const { return written_; }

 private:
  void flush(int64_t count) {
    auto path = dir_ / fmt::format("{}_{:06d}.bin", prefix_, written_++);
    tiller::write_token_shard(path, std::span(tokens_.data(), count), width_);
    tokens_.erase(tokens_.begin(), tokens_.begin() + count);
  }

  std::filesystem::path dir_;
  std::string prefix_;
  int width_;
  int64_t limit_;
  std::vector<tiller::TokenId> tokens_;
  int64_t total_ = 0;
  int written_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train or load a byte-level BPE tokenizer and write train/val token shards"};
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string tokenizer_path;
  int64_t vocab_size = 2048;
  double val_fraction = 0.01;
  int64_t shard_tokens = 100'000'000;
  bool no_special_in_text = false;
  app.add_option("--input", inputs, "text files (each one document)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", out_dir, "output folder (created if missing)")->required();
  app.add_option("--tokenizer", tokenizer_path,
                 "tokenizer.json or a folder with vocab.json + merges.txt; trains one if absent");
  app.add_option("--vocab-size", vocab_size, "vocab size when training (incl. special tokens)");
  app.add_option("--val-fraction", val_fraction, "share of tokens for the val split")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--shard-tokens", shard_tokens, "tokens per train shard")
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-special-in-text", no_special_in_text,
               "encode special-token text in the inputs as ordinary bytes");
  CLI11_PARSE(app, argc, argv);

  try {
    std::filesystem::create_directories(out_dir);
    tiller::Tokenizer tokenizer;
    auto start = Clock::now();
    auto seconds_since = [](Clock::time_point t) {
      return std::chrono::duration<double>(Clock::now() - t).count();
    };
    if (!tokenizer_path.empty()) {
      tokenizer = tiller::Tokenizer::load(tokenizer_path);
      std::printf("loaded %s: %lld tokens, %lld merges\n", tokenizer_path.c_str(),
                  static_cast<long long>(tokenizer.vocab_size()),
                  static_cast<long long>(tokenizer.merge_count()));
    } else {
      tiller::BpeTrainer trainer;
      for (const std::string& path : inputs) {
        for_each_chunk(path, [&](std::string_view chunk) { add_training_text(trainer, chunk); });
      }
      tiller::BpeTrainOptions options;
      options.vocab_size = vocab_size;
      options.special_tokens.assign(tiller::special_tokens::kAll.begin(),
                                    tiller::special_tokens::kAll.end());
      options.progress = [&](const tiller::BpeTrainProgress& p) {
        std::printf("\rtraining: %lld/%lld merges, %.1f s", static_cast<long long>(p.merges_done),
                    static_cast<long long>(p.merges_planned), seconds_since(start));
        std::fflush(stdout);
      };
      tokenizer = trainer.train(options);
      auto saved = std::filesystem::path(out_dir) / "tokenizer.json";
      tokenizer.save_tokenizer_json(saved);
      std::printf("\ntrained %lld tokens from %lld distinct words in %.1f s -> %s\n",
                  static_cast<long long>(tokenizer.vocab_size()),
                  static_cast<long long>(trainer.distinct_words()), seconds_since(start),
                  saved.c_str());
    }

    const int width = tiller::shard_token_width(tokenizer.vocab_size());
    ShardSink train(out_dir, "train", width, shard_tokens);
    ShardSink val(out_dir, "val", width, INT64_MAX);
    const bool has_end_of_text = tokenizer.has_added_token(tiller::special_tokens::kEndOfText);
    const auto end_of_text =
        has_end_of_text ? tokenizer.token_id(tiller::special_tokens::kEndOfText) : 0;
    int64_t bytes_read = 0;
    auto encode_start = Clock::now();
    auto last_report = encode_start;
    auto report_encoding = [&] {
      const int64_t tokens = train.total() + val.total();
      std::printf("\rencoding: %.1f MB, %lld tokens, %.0f tokens/s", bytes_read / 1e6,
                  static_cast<long long>(tokens),
                  tokens / std::max(1e-9, seconds_since(encode_start)));
      std::fflush(stdout);
    };
    auto route = [&](const std::vector<tiller::TokenId>& ids) {
      const double all = static_cast<double>(train.total() + val.total() + ids.size());
      bool to_val = static_cast<double>(val.total() + ids.size()) <= val_fraction * all;
      (to_val ? val : train).append(ids);
    };
    for (const std::string& path : inputs) {
      for_each_chunk(path, [&](std::string_view chunk) {
        route(tokenizer.encode(chunk, /*allow_special=*/!no_special_in_text));
        bytes_read += static_cast<int64_t>(chunk.size());
        if (seconds_since(last_report) < 0.5) return;
        last_report = Clock::now();
        report_encoding();
      });
      if (has_end_of_text) route({end_of_text});
    }
    report_encoding();
    train.finish();
    val.finish();
    std::printf(
        "\nwrote %lld train tokens in %d shard(s) and %lld val tokens (%d bytes/token) "
        "to %s; %.2f bytes of text per token\n",
        static_cast<long long>(train.total()), train.shards_written(),
        static_cast<long long>(val.total()), width, out_dir.c_str(),
        bytes_read / std::max(1.0, static_cast<double>(train.total() + val.total())));
    if (val_fraction > 0 && val.total() == 0) {
      std::printf("warning: the val split is empty (input too small for --val-fraction)\n");
    }
  } catch (const tiller::Error& e) {
    std::fprintf(stderr, "tokenize: %s\n", e.what());
    return 1;
  }
  return 0;
}
