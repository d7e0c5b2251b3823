// Byte-level BPE tokenizer: GPT-2 pre-tokenisation, merge order, exact round trips, file formats,
// special tokens and training.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "kernels/error.h"
#include "core/text/pretokenize.h"
#include "core/text/special_tokens.h"
#include "core/text/tokenizer.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

using Pieces = std::vector<std::string_view>;

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// vocab.json with byte b as id b, then `extra` byte-level tokens as ids 256, 257, ...
std::string vocab_json(const std::vector<std::string>& extra) {
  std::string json = "{";
  for (int b = 0; b < 256; ++b) {
    json += json_string(byte_to_unicode(static_cast<uint8_t>(b))) + ": " + std::to_string(b) + ", ";
  }
  for (size_t i = 0; i < extra.size(); ++i) {
    json += json_string(extra[i]) + ": " + std::to_string(256 + i) + ", ";
  }
  json.resize(json.size() - 2);
  return json + "}";
}

Tokenizer tiny_tokenizer(const TempDir& dir, const std::vector<std::string>& merged,
                         const std::string& merges_txt) {
  write_text(dir / "vocab.json", vocab_json(merged));
  write_text(dir / "merges.txt", merges_txt);
  return Tokenizer::load_vocab_merges(dir / "vocab.json", dir / "merges.txt");
}

// Pseudo-English: words of 1-3 syllables drawn with a skewed distribution, so that some words
// are frequent (worth a token) and the long tail keeps offering new pairs to merge.
std::string english_like_corpus(size_t bytes, uint32_t seed) {
  const std::vector<std::string> syllables = {
      "the", "an",  "er",  "in", "on", "at", "es", "or",  "ti",  "re", "ed", "al", "st", "ar",
      "ou",  "ing", "ion", "ly", "ma", "de", "co", "pro", "ver", "ca", "mi", "tu", "lo", "ne",
      "sa",  "ki",  "po",  "ru", "ge", "bi", "fa", "wo",  "zy",  "qu", "ex", "ph"};
  std::mt19937 rng(seed);
  auto skewed = [&](size_t n) {  // index in [0, n), small indices far more likely
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<size_t>(u * u * u * static_cast<double>(n));
  };
  std::string text;
  while (text.size() < bytes) {
    std::string word;
    size_t count = 1 + rng() % 3;
    for (size_t s = 0; s < count; ++s) word += syllables[skewed(syllables.size())];
    if (rng() % 10 == 0) word[0] = static_cast<char>(std::toupper(word[0]));
    text += word;
    uint32_t r = rng() % 20;
    text += r == 0 ? ". " : r == 1 ? ", " : r == 2 ? "\n" : r == 3 ? " 19" : " ";
  }
  return text;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

Tokenizer trained_tokenizer(int64_t vocab_size) {
  BpeTrainer trainer;
  trainer.add_text(english_like_corpus(60000, 1));
  BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.special_tokens.assign(special_tokens::kAll.begin(), special_tokens::kAll.end());
  return trainer.train(options);
}

}  // namespace

TEST_CASE("the pre-tokeniser splits text exactly as GPT-2's regex does", "[tokenizer]") {
  REQUIRE(pretokenize("Hello world's 123!!") == Pieces{"Hello", " world", "'s", " 123", "!!"});
  REQUIRE(pretokenize("I'll they're we've don't") ==
          Pieces{"I", "'ll", " they", "'re", " we", "'ve", " don", "'t"});
  // A whitespace run before a word leaves its last space to the word; at the end it stays whole.
  REQUIRE(pretokenize("a  b\n\nc  ") == Pieces{"a", " ", " b", "\n", "\n", "c", "  "});
  REQUIRE(pretokenize("x=1+22;  !?") == Pieces{"x", "=", "1", "+", "22", ";", " ", " !?"});
  // Punctuation runs swallow apostrophes that follow them: "!!'" then "s".
  REQUIRE(pretokenize("ok!!'s") == Pieces{"ok", "!!'", "s"});
  REQUIRE(pretokenize("") == Pieces{});
}

TEST_CASE("the pre-tokeniser classifies non-ASCII letters, digits, spaces and symbols",
          "[tokenizer]") {
  REQUIRE(pretokenize("h\xC3\xA9llo w\xC3\xB6rld") == Pieces{"h\xC3\xA9llo", " w\xC3\xB6rld"});
  REQUIRE(pretokenize("\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80!") ==  // 你好 😀!
          Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", " \xF0\x9F\x98\x80!"});
  REQUIRE(pretokenize("x\xC2\xB2 \xD9\xA3\xD9\xA4") ==  // x² ٣٤ (Arabic-Indic digits)
          Pieces{"x", "\xC2\xB2", " \xD9\xA3\xD9\xA4"});
  REQUIRE(pretokenize("a\xE3\x80\x80\xE3\x80\x80"
                      "b") ==                                 // two ideographic spaces
          Pieces{"a", "\xE3\x80\x80", "\xE3\x80\x80", "b"});  // only ASCII ' ' joins a word
  REQUIRE(classify_code_point(U'\u00A0') == CharClass::space);
  REQUIRE(classify_code_point(U'\u0416') == CharClass::letter);  // Cyrillic Zhe
  REQUIRE(classify_code_point(U'\u2014') == CharClass::other);   // em dash
  REQUIRE(classify_code_point(U'\uFF15') == CharClass::number);  // fullwidth 5
  // Invalid bytes are one "other" piece each, merged with neighbouring punctuation.
  REQUIRE(pretokenize("a\xFF\xFE!b") == Pieces{"a", "\xFF\xFE!", "b"});
}

TEST_CASE("the bytes-to-unicode map is GPT-2's and inverts exactly", "[tokenizer]") {
  REQUIRE(byte_to_unicode('A') == "A");
  REQUIRE(byte_to_unicode(' ') == "\xC4\xA0");   // U+0120 'Ġ'
  REQUIRE(byte_to_unicode('\n') == "\xC4\x8A");  // U+010A 'Ċ'
  REQUIRE(byte_to_unicode(0) == "\xC4\x80");     // U+0100
  REQUIRE(byte_to_unicode(0xAD) == "\xC5\x83");  // U+0143: the last unprintable byte
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string back;
  REQUIRE(unicode_to_bytes(bytes_to_unicode(all), back));
  REQUIRE(back == all);
  REQUIRE_FALSE(unicode_to_bytes("\xE2\x82\xAC", back));  // U+20AC is outside the map
}

TEST_CASE("BPE applies merges lowest rank first, leftmost on ties, over a hand-written vocab",
          "[tokenizer]") {
  TempDir dir;
  // ids: he=256, ll=257, hell=258, hello=259, Ġw=260
  Tokenizer tokenizer = tiny_tokenizer(dir, {"he", "ll", "hell", "hello", "\xC4\xA0w"},
                                       "#version: 0.2\nh e\nl l\nhe ll\nhell o\n\xC4\xA0 w\n");
  REQUIRE(tokenizer.vocab_size() == 261);
  REQUIRE(tokenizer.merge_count() == 5);
  REQUIRE(tokenizer.encode("hello") == std::vector<TokenId>{259});
  // "hellhe": both "h e" merge first, then "l l", then "he ll"; "hell he" has no merge.
  REQUIRE(tokenizer.encode("hellhe") == std::vector<TokenId>{258, 256});
  REQUIRE(tokenizer.encode("hello world") == std::vector<TokenId>{259, 260, 'o', 'r', 'l', 'd'});
  REQUIRE(tokenizer.encode("lll") == std::vector<TokenId>{257, 'l'});

  // The same pairs in the opposite rank order give a different segmentation.
  TempDir other_dir;
  Tokenizer reversed = tiny_tokenizer(other_dir, {"el", "he"}, "e l\nh e\n");
  REQUIRE(reversed.encode("hel") == std::vector<TokenId>{'h', 256});
  Tokenizer forward = tiny_tokenizer(other_dir, {"he", "el"}, "h e\ne l\n");
  REQUIRE(forward.encode("hel") == std::vector<TokenId>{256, 'l'});
}

TEST_CASE("decode(encode(s)) == s for random bytes, UTF-8 and invalid sequences", "[tokenizer]") {
  Tokenizer trained = trained_tokenizer(600);
  Tokenizer bytes_only;
  std::vector<std::string> samples = {
      "",
      "plain ascii, with punctuation!? and   spaces\n\n\ttabs",
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD emoji with skin tone",
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6 CJK \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "\xFF\xFE invalid lead bytes, \xE4\xBD truncated, \xC0\xAF overlong, \xED\xA0\x80 surrogate",
      "ends in a truncated sequence \xF0\x9F\x98",
      "the <|endoftext|> marker and <|end|> inside text",
  };
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto bytes = random_bytes(50 + seed * 37, seed);
    samples.emplace_back(bytes.begin(), bytes.end());
  }
  for (const std::string& text : samples) {
    INFO("sample of " << text.size() << " bytes");
    REQUIRE(trained.decode(trained.encode(text)) == text);
    REQUIRE(trained.decode(trained.encode(text, /*allow_special=*/true)) == text);
    REQUIRE(bytes_only.encode(text).size() == text.size());
    REQUIRE(bytes_only.decode(bytes_only.encode(text)) == text);
  }
}

TEST_CASE("special tokens are matched whole only when allowed", "[tokenizer]") {
  Tokenizer tokenizer = trained_tokenizer(400);
  TokenId end_of_text = tokenizer.token_id(special_tokens::kEndOfText);
  TokenId end_of_turn = tokenizer.token_id(special_tokens::kEndOfTurn);
  REQUIRE(end_of_text == 400 - 5);
  REQUIRE(tokenizer.token_bytes(end_of_text) == "<|endoftext|>");

  std::string text = "the end<|endoftext|>the<|end|>";
  auto allowed = tokenizer.encode(text, /*allow_special=*/true);
  auto plain = tokenizer.encode(text);
  REQUIRE(std::count(allowed.begin(), allowed.end(), end_of_text) == 1);
  REQUIRE(allowed.back() == end_of_turn);
  REQUIRE(std::count(plain.begin(), plain.end(), end_of_text) == 0);
  REQUIRE(std::count(plain.begin(), plain.end(), end_of_turn) == 0);
  REQUIRE(tokenizer.decode(allowed) == text);
  REQUIRE(tokenizer.decode(plain) == text);
  // The text around a special token is encoded as if the token were a document boundary.
  auto before = tokenizer.encode("the end");
  REQUIRE(std::vector<TokenId>(allowed.begin(), allowed.begin() + before.size()) == before);

  // Non-special added tokens are always matched; the longest wins at the same position.
  TokenId short_id = tokenizer.add_special_token("<|x|>");
  REQUIRE(tokenizer.add_special_token("<|x|>") == short_id);
  REQUIRE(tokenizer.vocab_size() == 401);
  auto ids = tokenizer.encode("a<|x|>b", true);
  REQUIRE(std::count(ids.begin(), ids.end(), short_id) == 1);
  REQUIRE_THROWS_WITH(tokenizer.token_id("<|missing|>"), Catch::Contains("<|missing|>"));
}

TEST_CASE("training reaches the requested vocab size, compresses and is deterministic",
          "[tokenizer]") {
  std::string corpus = english_like_corpus(200000, 7);
  BpeTrainer trainer;
  trainer.add_text(corpus);
  BpeTrainOptions options;
  options.vocab_size = 700;
  options.special_tokens = {"<|endoftext|>"};
  std::vector<int64_t> reported;
  options.progress_every = 50;
  options.progress = [&](const BpeTrainProgress& p) { reported.push_back(p.merges_done); };
  Tokenizer first = trainer.train(options);
  REQUIRE(first.vocab_size() == 700);
  REQUIRE(first.merge_count() >= 700 - 256 - 1);
  REQUIRE(reported.size() >= 8);
  REQUIRE(std::is_sorted(reported.begin(), reported.end()));
  REQUIRE(reported.back() == first.merge_count());

  auto ids = first.encode(corpus);
  REQUIRE(first.decode(ids) == corpus);
  REQUIRE(ids.size() * 3 < corpus.size());  // > 3 bytes per token on this word-based corpus

  Tokenizer second = trainer.train(options);
  REQUIRE(second.merges() == first.merges());
  REQUIRE(first.token_bytes(first.vocab_size() - 1) == "<|endoftext|>");
  BpeTrainOptions too_small;
  too_small.vocab_size = 200;
  REQUIRE_THROWS_WITH(trainer.train(too_small), Catch::Contains("vocab_size 200"));
}

TEST_CASE("tokenizer.json and vocab.json + merges.txt save and load back identically",
          "[tokenizer]") {
  TempDir dir;
  Tokenizer original = trained_tokenizer(500);
  original.save_tokenizer_json(dir / "tokenizer.json");
  original.save_vocab_merges(dir / "vocab.json", dir / "merges.txt");
  Tokenizer from_json = Tokenizer::load(dir / "tokenizer.json");
  Tokenizer from_gpt2_files = Tokenizer::load_vocab_merges(dir / "vocab.json", dir / "merges.txt");
  std::string text = english_like_corpus(3000, 3) + "<|endoftext|>\xF0\x9F\x98\x80";
  for (const Tokenizer* loaded : {&from_json, &from_gpt2_files}) {
    REQUIRE(loaded->vocab_size() == original.vocab_size());
    REQUIRE(loaded->merges() == original.merges());
    REQUIRE(loaded->added_tokens().size() == original.added_tokens().size());
    REQUIRE(loaded->encode(text, true) == original.encode(text, true));
    REQUIRE(loaded->token_id("<|user|>") == original.token_id("<|user|>"));
  }
  // A custom special token only survives tokenizer.json.
  original.add_special_token("<|tool|>");
  REQUIRE_THROWS_WITH(original.save_vocab_merges(dir / "v.json", dir / "m.txt"),
                      Catch::Contains("<|tool|>") && Catch::Contains("save_tokenizer_json"));
  original.save_tokenizer_json(dir / "tokenizer.json");
  REQUIRE(Tokenizer::load(dir.path()).token_id("<|tool|>") == 500);
}

TEST_CASE("a hand-written tokenizer.json with both merge forms and added tokens loads",
          "[tokenizer]") {
  TempDir dir;
  std::string json = R"({"version": "1.0",
    "added_tokens": [{"id": 258, "content": "<|endoftext|>", "special": true},
                     {"id": 259, "content": "[TOOL]", "special": false}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}]},
    "model": {"type": "BPE", "vocab": )" +
                     vocab_json({"he", "hel"}) + R"(, "merges": ["h e", ["he", "l"]]}})";
  write_text(dir / "tokenizer.json", json);
  Tokenizer tokenizer = Tokenizer::load_tokenizer_json(dir / "tokenizer.json");
  REQUIRE(tokenizer.vocab_size() == 260);
  REQUIRE(tokenizer.encode("help") == std::vector<TokenId>{257, 'p'});
  REQUIRE(tokenizer.encode("a[TOOL]") == std::vector<TokenId>{'a', 259});
  REQUIRE(tokenizer.encode("<|endoftext|>", true) == std::vector<TokenId>{258});
}

TEST_CASE("missing and corrupt tokenizer files are errors naming the file and the problem",
          "[tokenizer]") {
  TempDir dir;
  auto vocab = dir / "vocab.json";
  auto merges = dir / "merges.txt";
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains(vocab.string()) && Catch::Contains("cannot open"));
  write_text(vocab, "{\"a\": 0,");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains(vocab.string()) && Catch::Contains("not valid JSON"));
  write_text(vocab, "{\"a\": 0, \"b\": 1}");
  write_text(merges, "a b\n");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains(vocab.string()) && Catch::Contains("no token for byte 0x00"));
  write_text(vocab, vocab_json({"he"}));
  write_text(merges, "#version: 0.2\nh e\nx y\n");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains(merges.string() + "' line 3") &&
                          Catch::Contains("produces a token that is not in the vocabulary"));
  write_text(merges, "h e\nhe\n");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains(merges.string() + "' line 2") &&
                          Catch::Contains("two tokens separated by one space"));
  write_text(merges, "h e\nzz q\n");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains("token 'zz' is not in the vocabulary"));
  write_text(vocab, "{\"a\": 0, \"b\": 5}");
  REQUIRE_THROWS_WITH(Tokenizer::load_vocab_merges(vocab, merges),
                      Catch::Contains("id 1 is missing"));
  write_text(dir / "tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  REQUIRE_THROWS_WITH(Tokenizer::load(dir / "tokenizer.json"),
                      Catch::Contains("tokenizer.json") && Catch::Contains("Unigram"));
  REQUIRE_THROWS_WITH(Tokenizer::load(dir / "absent"), Catch::Contains("does not exist"));
  REQUIRE_THROWS_WITH(Tokenizer().decode(std::vector<TokenId>{7, 256}),
                      Catch::Contains("id 256 is outside the vocabulary (size 256)"));
}
