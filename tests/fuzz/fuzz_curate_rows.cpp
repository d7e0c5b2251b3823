// Fuzz harness: the curation row reader (core/data/rows) and the stages that read its fields.
// The input is a file's bytes: read as JSONL (every line a row: chat, prompt/completion,
// preference or text, told apart by keys) and, the same bytes, as a plain-text corpus split at
// <|endoftext|>. Each row that parses goes through what curation does with it: normalisation,
// word shingles, the Gopher document rules or the chat rules; then the whole curation run (no
// score provider) and its output files, which must be written whatever bytes the rows held.
#include "core/data/curate.h"
#include "core/data/normalise.h"
#include "core/data/quality_rules.h"
#include "core/data/rows.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

namespace {

void curate_all(const data::RowStore& store) {
  if (store.rows.empty()) return;
  data::Curator curator(data::CurateConfig{});
  data::CurateResult result = curator.run(store.rows);
  data::write_curation_outputs(scratch_dir() / "curated", store, result, data::CurateConfig{});
}

void curate_one(const data::Row& row) {
  std::string normalised = data::normalise_text(row.text);
  data::word_shingles(normalised, 5);
  data::text_hash64(normalised);
  if (row.format == data::RowFormat::text)
    data::check_document(row.text);
  else
    data::check_chat(row);
}

}  // namespace

void curate_rows_target(std::string_view input) {
  expect_result_or_error([&] {
    auto jsonl = write_scratch("rows.jsonl", input);
    data::RowStore store = data::read_rows({jsonl}, {.skip_malformed = true});
    for (const data::Row& row : store.rows) curate_one(row);
    curate_all(store);
  });
  expect_result_or_error([&] {
    auto strict = write_scratch("strict.jsonl", input);
    data::read_rows({strict});
  });
  expect_result_or_error([&] {
    auto text = write_scratch("corpus.txt", input);
    data::RowStore store = data::read_rows({text}, {.skip_malformed = true});
    for (const data::Row& row : store.rows) curate_one(row);
    curate_all(store);
  });
  expect_result_or_error([&] {
    auto text = write_scratch("strict.txt", input);
    data::read_rows({text});
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::curate_rows_target)
