// Curation text machinery: normalisation, the row store's formats and errors, word shingles.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/data/curate.h"
#include "core/data/normalise.h"
#include "core/data/rows.h"
#include "kernels/error.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::data;

TEST_CASE("normalisation lower-cases Latin, Greek and Cyrillic and folds punctuation and spaces",
          "[curate]") {
  CHECK(normalise_text("Don't  STOP!\n\tNow…") == "don t stop now");
  CHECK(normalise_text("ÀÉÎÕÜ Ÿ Łódź") == "àéîõü ÿ łódź");
  CHECK(normalise_text("ΑΒΓ Ωμέγα Άλφα") == "αβγ ωμέγα άλφα");
  CHECK(normalise_text("ПРИВЕТ Ёж") == "привет ёж");
  CHECK(normalise_text("a\u00A0b\u2003c\u200Bd") == "a b cd");  // nbsp, em space, zero width
  CHECK(normalise_text("  ,,, ") == "");
  CHECK(normalise_text("What is 11+8?") == "what is 11 + 8");  // operators are words
  CHECK(normalise_text("What is 11 * 8?") == "what is 11 * 8");
  CHECK(normalise_text("x\xFFy") == "x\xEF\xBF\xBDy");  // invalid byte -> U+FFFD, kept
}

TEST_CASE("crc32 is zlib's, so Python's zlib.crc32 reproduces the shingle hashes", "[curate]") {
  CHECK(crc32("") == 0u);
  CHECK(crc32("hello world") == 0x0D4A1185u);  // zlib.crc32(b"hello world")
  CHECK(crc32("world", crc32("hello ")) == crc32("hello world"));
  // Long enough for the 8-byte steps and a tail: zlib.crc32(b"The quick brown fox jumps over")
  CHECK(crc32("The quick brown fox jumps over") == 0x051E1ADEu);
}

TEST_CASE("word shingles are the sorted unique n-grams; short texts give one shingle", "[curate]") {
  const std::vector<uint64_t> grams = word_shingles("a b c a b c", 3);
  CHECK(grams.size() == 3);  // "a b c", "b c a", "c a b" ("a b c" twice)
  CHECK(std::is_sorted(grams.begin(), grams.end()));
  CHECK(word_shingles("a b", 5) == std::vector<uint64_t>{shingle_hash64("a b")});
  CHECK(word_shingles("", 5).empty());
}

TEST_CASE("rows of every format keep their line verbatim and expose prompt, response and text",
          "[curate]") {
  const Row chat =
      parse_row(R"({"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q?"},)"
                R"({"role":"assistant","content":"A."}],"task":"colour"})",
                "f.jsonl:1");
  CHECK(chat.format == RowFormat::chat);
  CHECK(chat.prompt == "Q?");
  CHECK(chat.response == "A.");
  CHECK(chat.text == "Q?\nA.");
  CHECK(chat.task == "colour");
  CHECK(chat.raw.starts_with(R"({"messages")"));

  const Row pc = parse_row(R"({"prompt":"P","completion":"C."})", "f.jsonl:2");
  CHECK(pc.format == RowFormat::prompt_completion);
  CHECK(pc.messages.size() == 2);

  const Row pref = parse_row(
      R"({"prompt":"<|user|>\nWhat?<|end|>\n<|assistant|>\n","chosen":"Blue.<|end|>","rejected":"x"})",
      "f.jsonl:3");
  CHECK(pref.format == RowFormat::preference);
  CHECK(pref.prompt == "What?");
  CHECK(pref.response == "Blue.");

  const Row pref_chat = parse_row(
      R"({"prompt":[{"role":"user","content":"Q?"}],"chosen":[{"role":"assistant","content":"Yes."}],)"
      R"("rejected":[{"role":"assistant","content":"No."}]})",
      "f.jsonl:4");
  CHECK(pref_chat.prompt == "Q?");
  CHECK(pref_chat.response == "Yes.");

  const Row doc = parse_row(R"({"text":"Hello there."})", "f.jsonl:4");
  CHECK(doc.format == RowFormat::text);
  CHECK(doc.text == "Hello there.");
  CHECK_FALSE(doc.has_assistant_turn());
}

TEST_CASE("a malformed line is an error naming file:line, or listed under skip_malformed",
          "[curate]") {
  testing::TempDir dir;
  const auto path = dir.path() / "pool.jsonl";
  std::ofstream(path) << R"({"text":"ok"})"
                      << "\n\n{not json\n"
                      << R"({"messages":[{"role":"robot","content":"x"}]})"
                      << "\n";
  try {
    read_rows({path});
    FAIL("expected an error");
  } catch (const Error& error) {
    CHECK(std::string(error.what()).starts_with("pool.jsonl:3: not valid JSON"));
  }
  const RowStore store = read_rows({path}, {.skip_malformed = true});
  CHECK(store.rows.size() == 1);
  REQUIRE(store.malformed.size() == 2);
  CHECK(store.malformed[0].source == "pool.jsonl:3");
  CHECK(store.malformed[1].problem.find("role 'robot'") != std::string::npos);
}

TEST_CASE("a plain text file splits into documents at <|endoftext|>", "[curate]") {
  testing::TempDir dir;
  const auto path = dir.path() / "corpus.txt";
  std::ofstream(path) << "First doc.\n<|endoftext|>\n\n<|endoftext|>Second \"doc\".";
  const RowStore store = read_rows({path});
  REQUIRE(store.rows.size() == 2);
  CHECK(store.rows[1].text == "Second \"doc\".");
  CHECK(store.rows[1].raw == R"({"text":"Second \"doc\"."})");
  CHECK(store.rows[1].source == "corpus.txt:document 3");
}

TEST_CASE("a text document that is not UTF-8 is an error naming it, or listed as malformed and "
          "written to rejected.jsonl",
          "[curate]") {
  // Fuzz finding (tests/fuzz/regressions/curate_rows): the document became a {"text"} row whose
  // JSON could not be written, and a malformed JSONL line with such bytes broke rejected.jsonl.
  testing::TempDir dir;
  const auto corpus = dir.path() / "corpus.txt";
  std::ofstream(corpus) << "Good document.<|endoftext|>Bad \xA4 byte.<|endoftext|>Fine too.";
  try {
    read_rows({corpus});
    FAIL("expected an error");
  } catch (const Error& error) {
    CHECK(std::string(error.what()).starts_with("corpus.txt:document 2: not valid UTF-8"));
  }
  const auto pool = dir.path() / "pool.jsonl";
  std::ofstream(pool) << "{\"text\": \"bad \xA4\"}\n";
  const RowStore store = read_rows({corpus, pool}, {.skip_malformed = true});
  REQUIRE(store.rows.size() == 2);
  REQUIRE(store.malformed.size() == 2);
  CHECK(store.malformed[0].source == "corpus.txt:document 2");
  CHECK(store.malformed[1].source == "pool.jsonl:1");
  const CurateConfig config = CurateConfig::from_json_text(
      R"({"stages": ["exact_dedup", "quality"]})", "test");
  const CurateResult result = Curator(config).run(store.rows);
  write_curation_outputs(dir.path() / "out", store, result, config);
  std::ifstream rejected(dir.path() / "out" / "rejected.jsonl");
  std::string line;
  int malformed = 0;
  while (std::getline(rejected, line))
    if (line.find("\"malformed\"") != std::string::npos) {
      ++malformed;
      CHECK(line.find("\xEF\xBF\xBD") != std::string::npos);  // the bad byte as U+FFFD
    }
  CHECK(malformed == 2);
}
