// Documents from users' text files, for continued pretraining on a domain corpus
// (examples/pretrain --text FILE...).
//
// Two formats, chosen by the file's extension:
//   .jsonl  one JSON object per line with a string "text": one document per line (blank lines
//           are skipped; any other line that is not such an object is an error naming file:line);
//   other   plain UTF-8 text: documents are separated by <|endoftext|> when the file holds it,
//           otherwise by blank lines (paragraphs). Whitespace-only documents are dropped.
// Tokenising and the train/validation split are rl/data/pretrain_data.h's write_corpus_shards.
#pragma once

#include <string>
#include <vector>

namespace tiller::rl {

std::vector<std::string> read_text_documents(const std::vector<std::string>& paths);

}  // namespace tiller::rl
