#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/test_model_reference.cpp compares tiller with.

Run with Debian's torch:  /usr/bin/python3 tests/reference/make_fixtures.py

For each tiny model (GPT-2 and Llama families) it writes a directory tests/reference/<name>/ with
  config.json            Hugging Face config (what tiller's ModelConfig::from_hf_json reads)
  model.safetensors      the weights under Hugging Face names and layouts (GPT-2 Conv1D weights
                         are (in, out); vocabulary tables are unpadded) -> Transformer::from_pretrained
  reference.safetensors  input.ids, input.targets (with ignored positions), output.logits,
                         output.loss, grad.<name> for every parameter in tiller's (out, in) layout,
                         adamw.losses (the loss before each of the first 10 AdamW steps); the
                         AdamW hyper-parameters are in the metadata.

The models are written out in plain torch (not transformers) to match tiller's semantics exactly:
GPT-2 = learned positions, LayerNorm with bias, tanh GELU, fused qkv, tied LM head; Llama = RMSNorm,
rotate-half rotary embeddings, SwiGLU, grouped-query attention, untied LM head. Weights are drawn
in f32 (with larger spreads than a real init, so logits and gradients are far from trivial) and
everything is then computed in float64, so the fixtures are the exact answer for those f32 weights
and the tolerances in the C++ test measure tiller's f32 error alone. Files are safetensors written
by hand (struct + json), byte-compatible with the reference implementation.
"""
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
IGNORE_INDEX = -100
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
ADAMW_STEPS = 10


# ---- safetensors -------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor); f32 and i32 only, written little-endian, in order."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous()
        if t.dtype == torch.float64:
            t = t.float()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned, as in the reference writer
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ---- the two model families in plain torch -------------------------------------------------------

def attention(q, k, v):
    """q (B, H, T, D), k/v (B, Hkv, T, D); causal; query head h reads kv head h // (H / Hkv)."""
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    T = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(p, cfg, ids):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D = C // H
    eps = cfg["layer_norm_epsilon"]
    x = p["wte.weight"][ids] + p["wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        g = lambda n: p[f"h.{i}.{n}"]
        h = torch.nn.functional.layer_norm(x, (C,), g("ln_1.weight"), g("ln_1.bias"), eps)
        qkv = h @ g("attn.c_attn.weight").T + g("attn.c_attn.bias")  # (B, T, 3C) = [q | k | v]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        y = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ g("attn.c_proj.weight").T + g("attn.c_proj.bias")
        h = torch.nn.functional.layer_norm(x, (C,), g("ln_2.weight"), g("ln_2.bias"), eps)
        h = gelu_tanh(h @ g("mlp.c_fc.weight").T + g("mlp.c_fc.bias"))
        x = x + h @ g("mlp.c_proj.weight").T + g("mlp.c_proj.bias")
    x = torch.nn.functional.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].T  # tied LM head


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half_rope(x, theta):
    """x (B, H, T, D): pair (i, i + D/2) rotated by pos * theta^(-2i/D), positions 0..T-1."""
    T, D = x.shape[2], x.shape[3]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)  # (T, D/2)
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], -1).to(x.dtype)
    half = D // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def llama_forward(p, cfg, ids):
    B, T = ids.shape
    C, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    x = p["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        g = lambda n: p[f"model.layers.{i}.{n}"]
        h = rms_norm(x, g("input_layernorm.weight"), eps)
        q = (h @ g("self_attn.q_proj.weight").T).view(B, T, H, D).transpose(1, 2)
        k = (h @ g("self_attn.k_proj.weight").T).view(B, T, Hkv, D).transpose(1, 2)
        v = (h @ g("self_attn.v_proj.weight").T).view(B, T, Hkv, D).transpose(1, 2)
        q, k = rotate_half_rope(q, theta), rotate_half_rope(k, theta)
        y = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ g("self_attn.o_proj.weight").T
        h = rms_norm(x, g("post_attention_layernorm.weight"), eps)
        gate, up = h @ g("mlp.gate_proj.weight").T, h @ g("mlp.up_proj.weight").T
        x = x + (torch.nn.functional.silu(gate) * up) @ g("mlp.down_proj.weight").T
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p["lm_head.weight"].T


# ---- parameters ----------------------------------------------------------------------------------

def gpt2_shapes(cfg):
    V, C, I, P = cfg["vocab_size"], cfg["n_embd"], cfg["n_inner"], cfg["n_positions"]
    shapes = [("wte.weight", (V, C)), ("wpe.weight", (P, C))]
    for i in range(cfg["n_layer"]):
        s = f"h.{i}."
        shapes += [(s + "ln_1.weight", (C,)), (s + "ln_1.bias", (C,)),
                   (s + "attn.c_attn.weight", (3 * C, C)), (s + "attn.c_attn.bias", (3 * C,)),
                   (s + "attn.c_proj.weight", (C, C)), (s + "attn.c_proj.bias", (C,)),
                   (s + "ln_2.weight", (C,)), (s + "ln_2.bias", (C,)),
                   (s + "mlp.c_fc.weight", (I, C)), (s + "mlp.c_fc.bias", (I,)),
                   (s + "mlp.c_proj.weight", (C, I)), (s + "mlp.c_proj.bias", (C,))]
    return shapes + [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]


def llama_shapes(cfg):
    V, C, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * (C // cfg["num_attention_heads"])
    shapes = [("model.embed_tokens.weight", (V, C))]
    for i in range(cfg["num_hidden_layers"]):
        s = f"model.layers.{i}."
        shapes += [(s + "input_layernorm.weight", (C,)),
                   (s + "self_attn.q_proj.weight", (C, C)), (s + "self_attn.k_proj.weight", (kv, C)),
                   (s + "self_attn.v_proj.weight", (kv, C)), (s + "self_attn.o_proj.weight", (C, C)),
                   (s + "post_attention_layernorm.weight", (C,)),
                   (s + "mlp.gate_proj.weight", (I, C)), (s + "mlp.up_proj.weight", (I, C)),
                   (s + "mlp.down_proj.weight", (C, I))]
    return shapes + [("model.norm.weight", (C,)), ("lm_head.weight", (V, C))]


def init_params(shapes, generator):
    """f32 draws: norm gains around 1, biases and matrices N(0, 0.1 to 0.3)."""
    params = {}
    for name, shape in shapes:
        if "norm" in name or "ln_" in name:
            base = 1.0 if name.endswith("weight") else 0.0
            t = base + 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=generator)
        else:
            fan_in = shape[1]
            t = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        params[name] = t.float()
    return params


def decays(name):
    """tiller's default groups: matrices decay; biases, norm gains and embeddings do not."""
    embedding = name in ("wte.weight", "wpe.weight", "model.embed_tokens.weight")
    return name.endswith("weight") and not embedding and "norm" not in name and "ln_" not in name


def is_conv1d(name):
    return any(name.endswith(s) for s in ("attn.c_attn.weight", "attn.c_proj.weight",
                                          "mlp.c_fc.weight", "mlp.c_proj.weight"))


# ---- fixture -------------------------------------------------------------------------------------

def make_fixture(name, cfg, shapes, forward, hf_layout, seed):
    generator = torch.Generator().manual_seed(seed)
    params32 = init_params(shapes, generator)
    V = cfg["vocab_size"]
    B, T = 2, 8
    ids = torch.randint(0, V, (B, T), generator=generator, dtype=torch.int64)
    targets = torch.randint(0, V, (B, T), generator=generator, dtype=torch.int64)
    targets[0, 0] = IGNORE_INDEX  # ignored positions are excluded from the mean
    targets[1, 5] = IGNORE_INDEX

    def loss_of(p):
        logits = forward(p, cfg, ids)
        return logits, torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE_INDEX)

    params = {n: t.double().requires_grad_() for n, t in params32.items()}
    logits, loss = loss_of(params)
    loss.backward()

    # The first ADAMW_STEPS steps of torch.optim.AdamW with tiller's default parameter groups.
    train = {n: t.double().requires_grad_() for n, t in params32.items()}
    groups = [{"params": [t for n, t in train.items() if decays(n)],
               "weight_decay": ADAMW["weight_decay"]},
              {"params": [t for n, t in train.items() if not decays(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        _, step_loss = loss_of(train)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())

    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    weights = [(n, (t.T if hf_layout and is_conv1d(n) else t)) for n, t in params32.items()]
    write_safetensors(os.path.join(out, "model.safetensors"), weights, {"format": "pt"})
    reference = [("input.ids", ids.int()), ("input.targets", targets.int()),
                 ("output.logits", logits), ("output.loss", loss.reshape(1)),
                 ("adamw.losses", torch.tensor(losses, dtype=torch.float64))]
    reference += [("grad." + n, t.grad) for n, t in params.items()]
    write_safetensors(os.path.join(out, "reference.safetensors"), reference,
                      {"lr": ADAMW["lr"], "beta1": ADAMW["betas"][0], "beta2": ADAMW["betas"][1],
                       "eps": ADAMW["eps"], "weight_decay": ADAMW["weight_decay"],
                       "ignore_index": IGNORE_INDEX, "torch": torch.__version__})
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: loss {loss.item():.6f}, adamw losses {losses[0]:.4f} -> {losses[-1]:.4f}, "
          f"{size} bytes")


def main():
    torch.set_grad_enabled(True)
    gpt2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 101,
            "n_positions": 16, "n_ctx": 16, "n_embd": 32, "n_layer": 2, "n_head": 4,
            "n_inner": 128, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "tie_word_embeddings": True}
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 101,
             "hidden_size": 32, "intermediate_size": 80, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 16,
             "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu",
             "tie_word_embeddings": False}
    make_fixture("gpt2_tiny", gpt2, gpt2_shapes(gpt2), gpt2_forward, True, seed=1234)
    make_fixture("llama_tiny", llama, llama_shapes(llama), llama_forward, False, seed=5678)


if __name__ == "__main__":
    main()
