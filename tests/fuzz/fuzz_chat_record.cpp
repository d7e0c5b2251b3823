// Fuzz harness: one JSONL row of chat data, {"messages": [...]} or {"prompt", "completion"}
// (parse_chat_record, what SFT and the chat examples read), then rendered with the chat template.
#include "core/text/chat.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

void chat_record_target(std::string_view input) {
  expect_result_or_error([&] {
    std::vector<ChatMessage> messages = parse_chat_record(input, "fuzz.jsonl line 1");
    RenderedChat rendered = render_chat(small_tokenizer(), messages);
    if (rendered.tokens.size() != rendered.trainable.size())
      finding("render_chat: tokens and trainable mask differ in length");
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::chat_record_target)
