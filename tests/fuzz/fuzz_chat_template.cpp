// Fuzz harness: the chat template renderer on arbitrary messages. The input is role, content,
// role, content, ... separated by NUL bytes. Beyond the contract, the rendering must decode to
// exactly the template's text and hold exactly two turn markers per message, whatever the content
// (content can never forge a turn boundary: core/chat.h).
#include "core/text/chat.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

void chat_template_target(std::string_view input) {
  // Fields separated by NUL; the last field keeps any further NULs. At most 16 messages.
  std::vector<std::string_view> fields = split_parts(input, 32);
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (i > 0 && fields[i].empty() && fields[i + 1].empty()) break;
    messages.push_back({std::string(fields[i]), std::string(fields[i + 1])});
  }
  expect_result_or_error([&] {
    const Tokenizer& tokenizer = small_tokenizer();
    RenderedChat rendered = render_chat(tokenizer, messages);
    if (rendered.tokens.size() != rendered.trainable.size())
      finding("render_chat: tokens and trainable mask differ in length");
    std::string expected;
    for (const ChatMessage& message : messages)
      expected += "<|" + message.role + "|>\n" + message.content + "<|end|>\n";
    if (tokenizer.decode(rendered.tokens) != expected)
      finding("render_chat: the tokens do not decode to the template's text");
    size_t markers = 0;
    for (TokenId id : rendered.tokens) {
      for (const AddedToken& added : tokenizer.added_tokens()) markers += added.id == id ? 1 : 0;
    }
    if (markers != 2 * messages.size())
      finding("render_chat: " + std::to_string(markers) + " special tokens for " +
              std::to_string(messages.size()) + " messages (content forged a turn marker?)");
    std::vector<TokenId> prompt = render_generation_prompt(tokenizer, messages);
    if (prompt.size() <= rendered.tokens.size())
      finding("render_generation_prompt is not longer than the rendered chat");
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::chat_template_target)
