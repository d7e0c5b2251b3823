#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<harness>/ (small files, committed).

Seeds come from the files the world writes (Hugging Face transformers / tokenizers / safetensors,
TRL-style JSONL rows) and from tiller's own formats. Needs the venv of the common brief
(safetensors, tokenizers, transformers, numpy); CI never runs this. The trainer_state seed comes from
the harness itself: TILLER_FUZZ_WRITE_SEED=<file> build/fuzz/tests/fuzz/fuzz_trainer_state -runs=0.

    python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(harness, name, data):
    folder = os.path.join(ROOT, harness)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def safetensors_seeds():
    from safetensors.numpy import save

    put("safetensors", "hf_numpy.safetensors",
        save({"w": np.arange(6, dtype=np.float32).reshape(2, 3),
              "h": np.array([1.0, -2.5, 65504.0], dtype=np.float16),
              "d": np.array([1e-3, 3.0], dtype=np.float64),
              "i": np.array([[7]], dtype=np.int32),
              "s": np.array(2.0, dtype=np.float32),
              "e": np.zeros((0, 4), dtype=np.float32)},
             metadata={"format": "pt"}))
    put("safetensors", "unsupported_i64.safetensors", save({"ids": np.array([1, 2], dtype=np.int64)}))
    # bf16 written by hand (numpy has no bf16): header unpadded, out of offset order.
    header = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
                         "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    put("safetensors", "bf16_unpadded.safetensors",
        struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.5) + b"\x80\x3f\x00\x40")
    put("safetensors", "empty_header.safetensors", struct.pack("<Q", 2) + b"{}")


def model_config_seeds():
    from transformers import GPT2Config, LlamaConfig

    put("model_config", "hf_gpt2.json", GPT2Config().to_json_string())
    put("model_config", "hf_llama.json",
        LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2).to_json_string())
    here = os.path.dirname(os.path.abspath(__file__))
    for family in ("gpt2_tiny", "llama_tiny"):
        with open(os.path.join(here, "..", "reference", family, "config.json"), "rb") as f:
            put("model_config", family + ".json", f.read())


def byte_level_bpe(tmp):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(["The cat sat on the mat.", "Hello, how are you? Fine, thanks."] * 8,
                                  trainer)
    path = os.path.join(tmp, "tokenizer.json")
    tokenizer.save(path)
    tokenizer.model.save(tmp)  # vocab.json + merges.txt
    return path


def tokenizer_seeds():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = byte_level_bpe(tmp)
        with open(path, "rb") as f:
            put("tokenizer_json", "hf_byte_level.json", f.read())
        with open(os.path.join(tmp, "vocab.json"), "rb") as v, \
                open(os.path.join(tmp, "merges.txt"), "rb") as m:
            put("vocab_merges", "hf_vocab_merges", v.read() + b"\0" + m.read())


def shard(width, tokens):
    header = b"TILLERTK" + struct.pack("<IIQ", 1, width, len(tokens)) + bytes(40)
    return header + b"".join(struct.pack("<H" if width == 2 else "<i", t) for t in tokens)


CHATS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!"}]},
    {"prompt": "What is 2 + 2?", "completion": "4<|end|>"},
    {"messages": [{"role": "user", "content": "caf\u00e9 \u2603 \U0001F600"},
                  {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"},
                  {"role": "assistant", "content": ""}]},
]


def jsonl_seeds():
    put("shard", "width2.bin", shard(2, [1, 2, 3, 65535, 0, 7, 8, 9, 10]))
    put("shard", "width4.bin", shard(4, [1, 2, 3, 100000, 0, 7, 8, 9, 10]))
    for i, chat in enumerate(CHATS):
        put("chat_record", f"row{i}.json", json.dumps(chat))
    put("sft_jsonl", "stop.jsonl", "\0" + "\n".join(json.dumps(c) for c in CHATS) + "\n")
    put("sft_jsonl", "skip.jsonl", "\1" + json.dumps(CHATS[0]) + "\n\nnot json\n" + json.dumps(CHATS[1]))
    put("preference_record", "text.json",
        json.dumps({"prompt": "<|user|>\nName a colour.<|end|>\n<|assistant|>\n",
                    "chosen": "Blue.<|end|>", "rejected": "Blue is a", "margin": 0.5}))
    put("preference_record", "chat_trl.json",
        json.dumps({"prompt": [{"role": "user", "content": "Name a colour."}],
                    "chosen": [{"role": "assistant", "content": "Blue."}],
                    "rejected": "I like cats."}))
    put("chat_template", "three_turns", "system\0Be brief.\0user\0Hi <|end|> there\0assistant\0Hello!")
    put("chat_template", "bad_role", "robot\0beep")


def pretrain_config_seeds():
    put("pretrain_config", "small.json", json.dumps({
        "batch_size": 4, "seq_len": 32, "steps": 10, "schedule": "cosine", "peak_lr": 1e-3,
        "warmup_steps": 2, "seed": 3}, indent=2))
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "reference", "llama_tiny", "config.json")) as f:
        model = json.load(f)
    put("pretrain_config", "with_model.json", json.dumps({
        "model": model, "device": "cpu", "dtype": "f32", "on_nonfinite": "skip",
        "sample_prompt": "Once", "output_dir": "", "beta2": 0.95, "total_steps": 0}, indent=2))


if __name__ == "__main__":
    safetensors_seeds()
    model_config_seeds()
    tokenizer_seeds()
    jsonl_seeds()
    pretrain_config_seeds()
