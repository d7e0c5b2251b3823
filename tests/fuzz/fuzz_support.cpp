// Scratch files, input splitting and the shared tokenizer of the fuzz harnesses (fuzz_support.h).
#include "fuzz/fuzz_support.h"

#include <cstdlib>
#include <fstream>
#include <system_error>

#include "core/text/special_tokens.h"
#include "rl/data/pretrain_data.h"

namespace tiller::fuzz {

const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto path =
        std::filesystem::temp_directory_path() / ("tiller-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return path;
  }();
  return dir;
}

std::filesystem::path write_scratch(const std::string& name, std::string_view bytes) {
  std::filesystem::path path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) finding("cannot write scratch file " + path.string());
  return path;
}

std::vector<std::string_view> split_parts(std::string_view input, size_t parts) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (out.size() + 1 < parts) {
    size_t nul = input.find('\0', start);
    if (nul == std::string_view::npos) break;
    out.push_back(input.substr(start, nul - start));
    start = nul + 1;
  }
  out.push_back(start <= input.size() ? input.substr(start) : std::string_view());
  while (out.size() < parts) out.push_back({});
  return out;
}

const Tokenizer& small_tokenizer() {
  static const Tokenizer tokenizer = [] {
    std::vector<std::string_view> documents = {
        "The cat sat on the mat. The dog sat on the log.",
        "Hello, how are you? I am fine, thank you. What is 2 + 2? It is 4.",
        "tokenizers merge the most frequent pairs of bytes first, then the next ones.",
    };
    return rl::train_corpus_tokenizer(documents, 300);
  }();
  return tokenizer;
}

}  // namespace tiller::fuzz
