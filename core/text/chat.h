// The chat template: conversations -> token ids plus a per-token "trainable" mask.
//
// Layout (one template, no variants). Each message is rendered as
//
//     <|{role}|>\n{content}<|end|>\n
//
// with {role} one of system, user, assistant (the tokens of core/special_tokens.h). Example:
//
//     <|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n
//
// The role and end markers are single special-token ids placed by the template. Content and the
// "\n" separators are encoded with special tokens NOT allowed, so text that merely contains
// "<|end|>" stays ordinary bytes and cannot forge a turn boundary. Each content string is encoded
// on its own, so a message's tokens never depend on its neighbours.
//
// Mask (what SFT trains on): the tokens of every assistant content and the <|end|> that closes
// each assistant turn are trainable (1) — the model must learn to stop. Everything else is 0:
// role markers, the "\n" after them and after <|end|>, and all system and user tokens.
//
// A generation prompt is the rendered conversation followed by "<|assistant|>\n": the model's
// first sampled token is the first content token, exactly as in training, and generation stops
// at <|end|>. `{"prompt", "completion"}` data is one user turn plus one assistant turn.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/tokenizer.h"

namespace tiller {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct RenderedChat {
  std::vector<TokenId> tokens;
  std::vector<uint8_t> trainable;  // same length as tokens; 1 = assistant output
};

// Throws tiller::Error when a role is unknown or the tokenizer lacks a chat special token.
RenderedChat render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages);

// The conversation so far, then "<|assistant|>\n", ready for sampling.
std::vector<TokenId> render_generation_prompt(const Tokenizer& tokenizer,
                                              const std::vector<ChatMessage>& messages);

// {"prompt", "completion"} as a conversation: one user turn, one assistant turn.
std::vector<ChatMessage> prompt_completion_messages(std::string prompt, std::string completion);

// One JSONL record: {"messages":[{"role","content"},...]} or {"prompt","completion"}.
// Errors name `where` (e.g. "train.jsonl line 12") and what is missing.
std::vector<ChatMessage> parse_chat_record(std::string_view json_line, std::string_view where);

}  // namespace tiller
