"""GPT-2 in plain PyTorch and the end-to-end timing method shared by torch_train_gpt2.py and
torch_generate.py — the PyTorch side of bench/cuda/train_gpt2.cu and bench/cuda/generate.cu.

The model is GPT-2 as tiller builds it (core/model.h): learned positions, pre-LayerNorm blocks,
fused qkv, tanh-GELU MLP, biases everywhere, the token table tied to the LM head and padded to a
multiple of 64 rows (50304); logits are sliced back to the real vocabulary before the loss and
before argmax, so the padding never carries probability. Attention is
F.scaled_dot_product_attention (flash on CUDA). No transformers dependency.

KV cache: GPT2.make_cache preallocates (B, H, max_len, D) keys and values per layer; a forward
with a cache writes its keys/values at [length, length + T) and attends to everything cached.
Only the two calls generation needs are supported: a causal prefill into an empty cache and
single-token decode steps.

Timing (identical to bench/cuda/end_to_end.cuh): `warmup` untimed calls, then `runs` calls each
between two CUDA events, the host not waiting between calls; mean for throughput, median beside.
FLOPs per token for training (identical to train_gpt2.cu): 6 N + 12 L T C with N the parameters
without the position table.

smoke_config() is the tiny model of the scripts' `--device cpu` smoke mode, which runs every API
call of the GPU path on the CPU in seconds, so PyTorch / transformers API drift shows up in the
development machine's tests rather than during a GPU loan (bench/torch_smoke.py).
"""

import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 50257
H200_DATASHEET_BF16_TFLOPS = 989.0


class Config:
    def __init__(self, vocab_size=VOCAB, n_layer=12, n_head=12, n_embd=768, max_seq_len=1024):
        self.vocab_size, self.n_layer, self.n_head = vocab_size, n_layer, n_head
        self.n_embd, self.max_seq_len = n_embd, max_seq_len
        self.padded_vocab_size = (vocab_size + 63) // 64 * 64

    def num_parameters(self):
        """Hugging Face's count (unpadded vocabulary, tied table once), as tiller reports it."""
        C, L = self.n_embd, self.n_layer
        per_layer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (
            4 * C * C + C)
        return self.vocab_size * C + self.max_seq_len * C + L * per_layer + 2 * C

    def flops_per_token(self, T):
        matmul_params = self.num_parameters() - self.max_seq_len * self.n_embd
        return 6.0 * matmul_params + 12.0 * self.n_layer * T * self.n_embd


def smoke_config():
    """The --device cpu smoke model: GPT-2's vocabulary, 2 layers of width 64."""
    return Config(n_layer=2, n_head=2, n_embd=64, max_seq_len=64)


class KVCache:
    def __init__(self, config, batch, max_len, device, dtype):
        shape = (batch, config.n_head, max_len, config.n_embd // config.n_head)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, device=device, dtype=dtype)
                       for _ in range(config.n_layer)]
        self.length = 0


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def attention(self, x, cache, layer):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(C, dim=2))  # each (B, H, T, D)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            start = cache.length
            if start > 0 and T != 1:
                raise ValueError(f"KV cache: {T} new tokens after {start} cached; only a prefill "
                                 "into an empty cache or single-token decode steps are supported")
            cache.keys[layer][:, :, start:start + T] = k
            cache.values[layer][:, :, start:start + T] = v
            keys = cache.keys[layer][:, :, :start + T]
            values = cache.values[layer][:, :, :start + T]
            # A prefill is causal; one decode query may see every cached key.
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=start == 0)
        return self.attn_proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cache=None, layer=0):
        x = x + self.attention(self.ln_1(x), cache, layer)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, config, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.max_seq_len, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        # GPT-2's initialisation, as tiller's: N(0, 0.02), residual projections scaled by
        # 1/sqrt(2 L), biases and the padding rows zero.
        for name, parameter in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif parameter.dim() >= 2:
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(parameter, 0.0, std)
        with torch.no_grad():
            self.wte.weight[config.vocab_size:].zero_()

    def make_cache(self, batch, max_len):
        parameter = self.wte.weight
        return KVCache(self.config, batch, max_len, parameter.device, parameter.dtype)

    def forward(self, ids, targets=None, cache=None):
        """ids (B, T) -> logits (B, T, vocab) or, with targets, the mean cross-entropy loss."""
        T = ids.shape[1]
        start = cache.length if cache is not None else 0
        positions = torch.arange(start, start + T, device=ids.device)
        x = self.wte(ids) + self.wpe(positions)
        for layer, block in enumerate(self.h):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += T
        logits = F.linear(self.ln_f(x), self.wte.weight)[..., :self.config.vocab_size]
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def param_groups(self, weight_decay):
        """tiller's default groups: matrices decay; biases, norm gains and embeddings do not."""
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            is_matrix = parameter.dim() >= 2 and not name.startswith(("wte", "wpe"))
            (decay if is_matrix else no_decay).append(parameter)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]


def time_calls(call, warmup, runs, device="cuda"):
    """Per-call times in ms (see the module comment); on the CPU (the --device cpu smoke mode)
    perf_counter around each call instead of CUDA events."""
    for _ in range(warmup):
        call()
    if device != "cuda":
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1e3)
        return times
    torch.cuda.synchronize()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(runs + 1)]
    events[0].record()
    for i in range(runs):
        call()
        events[i + 1].record()
    events[-1].synchronize()
    return [events[i].elapsed_time(events[i + 1]) for i in range(runs)]


def timing_fields(times_ms):
    ordered = sorted(times_ms)
    return {"median_ms": round(ordered[len(ordered) // 2], 4),
            "mean_ms": round(sum(times_ms) / len(times_ms), 4),
            "min_ms": round(ordered[0], 4), "runs": len(times_ms)}


def print_line(**fields):
    print(json.dumps({"source": "torch", **fields}), flush=True)


def print_error(impl, kernel, shape, error):
    text = str(error).strip().splitlines()
    print_line(impl=impl, kernel=kernel, shape=shape,
               error=f"{type(error).__name__}: {text[0] if text else repr(error)}")


def random_tokens(batch, length, seed, device="cuda"):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, length), generator=generator).to(device)
