"""PyTorch twin of bench/cpu_train.cpp: tokens/s of one GPT-2 training step on the CPU.

Same model as tiller's Transformer (GPT-2 family): learned positions, pre-LayerNorm blocks with a
fused qkv projection, tanh GELU MLP of 4x width, biases everywhere, embeddings tied to the LM head;
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices only) after clip_grad_norm_(1.0). Attention is
F.scaled_dot_product_attention(is_causal=True) where torch has it (2.x), else nanoGPT's explicit
causal softmax(q k^T / sqrt(d)) v (Debian's torch 1.13). Random tokens; --warmup steps, then the
median of --steps step times. Prints "step_seconds", "cpu_seconds" (all threads, per timed step),
"peak_rss_kib" and, last,
"tokens_per_sec" lines (bench/cpu_train.cpp parses them).
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def forward(self, x, causal_mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        scores = scores.masked_fill(causal_mask[:T, :T], float("-inf"))
        y = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, layers, width, heads, seq_len, max_seq_len):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(max_seq_len, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", mask)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, targets):
        T = ids.size(1)
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x, self.causal_mask)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied LM head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    parser = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("width", 128), ("heads", 4), ("batch", 16),
                          ("seq-len", 128), ("vocab", 1024), ("steps", 7), ("threads", 2),
                          ("max-seq-len", 0), ("warmup", 2)]:
        parser.add_argument("--" + name, type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    max_seq_len = max(args.max_seq_len, args.seq_len)
    model = GPT(args.vocab, args.layers, args.width, args.heads, args.seq_len, max_seq_len)
    # Matrices decay; biases, norm gains and embeddings do not (tiller's default groups).
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n and "wpe" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.95))
    data = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1))
    inputs, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(inputs, targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    cpu_start = time.process_time()
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"torch_version {torch.__version__.split('+')[0]}")
    print(f"step_seconds {median:.4f}")
    print(f"cpu_seconds {(time.process_time() - cpu_start) / args.steps:.4f}")
    print(f"peak_rss_kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
    print(f"tokens_per_sec {args.batch * args.seq_len / median:.1f}")


if __name__ == "__main__":
    main()
