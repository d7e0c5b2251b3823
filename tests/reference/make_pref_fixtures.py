#!/usr/bin/env python3
"""Writes the TRL reference fixtures that tests/test_dpo.cpp and tests/test_grpo.cpp compare with.

Run with TRL installed (CI does not need it; the outputs are committed):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers trl
    /tmp/venv/bin/python tests/reference/make_pref_fixtures.py

(a) DPO: a tiny random GPT-2 (transformers GPT2LMHeadModel) as the policy and a perturbed copy as
    the frozen reference; a word-level tokenizer; three preference pairs of different prompt and
    completion lengths. For each loss type a real trl.DPOTrainer is built on them and its
    compute_loss is run on one collated batch of all pairs; the loss, TRL's logged metrics and the
    policy's parameter gradients are saved. Models run in float64 (weights drawn in f32), so the
    fixture is the exact answer for those f32 weights.
      dpo_tiny/policy/, dpo_tiny/reference/   config.json + model.safetensors (HF GPT-2 layout)
      dpo_tiny/cases.json                     token ids TRL produced, beta, per-case loss/metrics
      dpo_tiny/grads.safetensors              "<case>.grad.<name>" in tiller's (out, in) layout
                                              (all for sigmoid, SPOT_GRADS for the others)
(b) GRPO: TRL's GRPOTrainer._compute_loss, called unbound on a stand-in `self` whose
    _get_per_token_logps_and_entropies returns given log-probs, for each loss_type (with and
    without the KL term, two micro-batches of an accumulated step); the loss, the gradient w.r.t.
    the log-probs and the logged kl / clip ratios go to grpo_loss.json. The advantages are
    computed with TRL's own nanstd by the lines of _generate_and_score_completions (that method
    needs generation, so its arithmetic is reproduced here, line for line).
"""
import copy
import json
import os
import tempfile
import types
from collections import defaultdict

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import trl
from trl import DPOConfig, DPOTrainer, GRPOTrainer
from trl.trainer.utils import nanstd

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 24
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# ---- DPO ---------------------------------------------------------------------------------------

def word_tokenizer():
    vocab = {"<pad>": 0, "<eos>": 1}
    vocab.update({f"w{i}": i for i in range(2, VOCAB)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def tiny_gpt2(seed):
    config = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                        n_inner=64, activation_function="gelu_new", resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                        tie_word_embeddings=True, bos_token_id=1, eos_token_id=1,
                        pad_token_id=0)
    model = GPT2LMHeadModel(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # spreads larger than GPT-2's init so log-probs are far from uniform
        for name, p in model.named_parameters():
            if "ln_" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g) / p.shape[0] ** 0.5)
    return model


def perturbed(model, seed):
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in ref.named_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return ref


def save_hf(model, path):
    os.makedirs(path, exist_ok=True)
    model.config.to_json_file(os.path.join(path, "config.json"))
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
               if not k.endswith((".attn.bias", ".attn.masked_bias"))  # causal-mask buffers
               and k != "lm_head.weight"}  # tied to wte
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def tiller_grad_name_and_value(name, grad):
    name = name.removeprefix("transformer.")
    if name.endswith(CONV1D):
        grad = grad.T
    return name, grad.contiguous()


PAIRS = [  # strings; completions end with the eos token so TRL adds none
    {"prompt": "w2 w3 w4", "chosen": " w5 w6 <eos>", "rejected": " w7 <eos>"},
    {"prompt": "w8 w9", "chosen": " w10 <eos>", "rejected": " w11 w12 w13 w14 <eos>"},
    {"prompt": "w15 w16 w17 w18 w19", "chosen": " w20 w21 w22 w23 <eos>", "rejected": " w3 w2"},
]
SPOT_GRADS = ("wte.weight", "h.0.attn.c_attn.weight", "ln_f.bias")
DPO_CASES = [("sigmoid", 0.1, 0.0), ("hinge", 0.1, 0.0), ("ipo", 0.1, 0.0), ("robust", 0.1, 0.2)]


def make_dpo():
    from datasets import Dataset

    out_dir = os.path.join(HERE, "dpo_tiny")
    policy32 = tiny_gpt2(1234)
    reference32 = perturbed(policy32, 99)
    save_hf(policy32, os.path.join(out_dir, "policy"))
    save_hf(reference32, os.path.join(out_dir, "reference"))
    tokenizer = word_tokenizer()
    cases, grads, token_pairs = [], {}, None
    for loss_type, beta, smoothing in DPO_CASES:
        policy = copy.deepcopy(policy32).double()
        reference = copy.deepcopy(reference32).double()
        with tempfile.TemporaryDirectory() as tmp:
            args = DPOConfig(output_dir=tmp, report_to="none", bf16=False, fp16=False,
                             use_cpu=True, gradient_checkpointing=False, max_length=None,
                             per_device_train_batch_size=len(PAIRS), loss_type=[loss_type],
                             beta=beta, label_smoothing=smoothing, disable_dropout=True)
            trainer = DPOTrainer(model=policy, ref_model=reference, args=args,
                                 train_dataset=Dataset.from_list(PAIRS),
                                 processing_class=tokenizer)
            rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
            token_pairs = [{k: r[k + "_ids"] for k in ("prompt", "chosen", "rejected")}
                           for r in rows]
            batch = trainer.data_collator(rows)
            trainer.model.train()
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, batch)
            loss.backward()
            metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()
                       if k.startswith(("rewards/", "logps/"))}
            for name, p in trainer.model.named_parameters():
                tname, g = tiller_grad_name_and_value(name, p.grad.float())
                # Every gradient for sigmoid; the others differ only in d loss / d z per pair,
                # so three tensors (embedding, a Conv1D weight, a bias) keep the files small.
                if loss_type == "sigmoid" or tname in SPOT_GRADS:
                    grads[f"{loss_type}.grad.{tname}"] = g
        cases.append({"loss_type": loss_type, "beta": beta, "label_smoothing": smoothing,
                      "loss": loss.item(), "metrics": metrics})
    save_file(grads, os.path.join(out_dir, "grads.safetensors"))
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"trl_version": trl.__version__, "pairs": token_pairs, "cases": cases}, f,
                  indent=1)
        f.write("\n")


# ---- GRPO --------------------------------------------------------------------------------------

def grpo_advantages(rewards_per_func, weights, num_generations, scale_rewards):
    """_generate_and_score_completions' sum_then_normalize branch and its logged reward stats."""
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    mean_grouped = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped = mean_grouped.repeat_interleave(num_generations, dim=0)
    if scale_rewards in ["group", "none"]:
        std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
        std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
    else:
        std_rewards = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean_grouped
    if scale_rewards != "none":
        advantages = advantages / (std_rewards + 1e-4)
    is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    return advantages, {"reward": torch.nanmean(rewards).item(),
                        "reward_std": nanstd(rewards).item(),
                        "frac_reward_zero_std": is_std_zero.float().mean().item()}


class _Accelerator:
    num_processes = 1

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x


def trl_grpo_loss(logp, old_logp, ref_logp, advantages, mask, loss_type, beta, eps_low,
                  eps_high, max_len, accumulation_steps, num_items_in_batch):
    """GRPOTrainer._compute_loss on given log-probs; returns (loss, d loss / d logp, metrics)."""
    leaf = logp.clone().requires_grad_(True)
    self = types.SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (leaf, torch.zeros_like(leaf), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=loss_type,
        epsilon_low=eps_low, epsilon_high=eps_high, use_vllm=False,
        vllm_importance_sampling_correction=False,
        args=types.SimpleNamespace(use_bias_correction_kl=False, delta=None,
                                   steps_per_generation=accumulation_steps),
        model=types.SimpleNamespace(training=True),
        current_gradient_accumulation_steps=accumulation_steps,
        max_completion_length=max_len, accelerator=_Accelerator(),
        _entropy_bonus_enabled=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)})
    B = logp.shape[0]
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long),
              "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros_like(mask, dtype=torch.long),
              "completion_mask": mask, "advantages": advantages,
              "num_items_in_batch": torch.tensor(float(num_items_in_batch))}
    if old_logp is not None:
        inputs["old_per_token_logps"] = old_logp
    if beta != 0.0:
        inputs["ref_per_token_logps"] = ref_logp
    loss = GRPOTrainer._compute_loss(self, None, inputs)
    loss.backward()
    metrics = {k: v[-1] for k, v in self._metrics["train"].items()
               if k.startswith(("kl", "clip_ratio/"))}
    return loss.item(), leaf.grad, metrics


def make_grpo():
    g = torch.Generator().manual_seed(7)
    G, B, T = 4, 8, 6  # two prompts x four generations, completions of 1..6 tokens
    rewards_per_func = torch.stack([torch.tensor([1., 0, 0, 1, 1, 1, 1, 0]),
                                    torch.round(torch.rand(B, generator=g) * 4) / 4], dim=1)
    weights = torch.tensor([1.0, 0.5])
    lengths = torch.tensor([6, 1, 3, 4, 2, 6, 5, 1])
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).to(torch.float64)
    old = -1.0 - torch.rand(B, T, generator=g, dtype=torch.float64)
    logp = old + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)  # ratios around 1
    ref = old + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64)
    out = {"trl_version": trl.__version__, "num_generations": G,
           "rewards_per_func": rewards_per_func.T.tolist(), "weights": weights.tolist(),
           "mask": mask.tolist(), "logp": logp.tolist(), "old_logp": old.tolist(),
           "ref_logp": ref.tolist(), "advantages": {}, "losses": []}
    for scale in ("group", "batch", "none"):
        adv, stats = grpo_advantages(rewards_per_func.double(), weights.double(), G, scale)
        out["advantages"][scale] = {"values": adv.tolist(), **stats}
    adv = torch.tensor(out["advantages"]["group"]["values"], dtype=torch.float64)
    total_tokens = mask.sum().item()
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
        for beta, eps_high in ((0.0, 0.2), (0.04, 0.28)):
            for half in (0, 1):  # micro-batch `half` of a two-micro-batch accumulated step
                rows = slice(4 * half, 4 * half + 4)
                loss, grad, metrics = trl_grpo_loss(
                    logp[rows], old[rows], ref[rows], adv[rows], mask[rows], loss_type, beta,
                    0.2, eps_high, T, 2, total_tokens)
                out["losses"].append({"loss_type": loss_type, "beta": beta,
                                      "epsilon": 0.2, "epsilon_high": eps_high,
                                      "max_completion_length": T, "accumulation_steps": 2,
                                      "tokens_in_batch": total_tokens, "rows": [4 * half, 4 * half + 4],
                                      "loss": loss, "grad": grad.tolist(), "metrics": metrics})
    with open(os.path.join(HERE, "grpo_loss.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    torch.manual_seed(0)
    make_dpo()
    make_grpo()
    print("wrote", os.path.join(HERE, "dpo_tiny"), "and", os.path.join(HERE, "grpo_loss.json"))
