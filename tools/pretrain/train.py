#!/usr/bin/env python3
"""Pretrain the demo LLaMA-style model on tools/corpus/out/{train,valid}.bin (uint16 token ids).

  /usr/bin/python3 tools/pretrain/train.py --layers 8 --hidden 256 --heads 4 --kv-heads 2 --ffn 688 \
      --ctx 256 --tokens 3000000 --batch 16 --lr 1e-3 --run-dir tools/pretrain/runs/demo \
      --export public/models/demo

AdamW, linear warm-up then cosine decay to lr/10. Logs to stdout; evaluates validation loss every
--eval-every steps; saves <run-dir>/ckpt.pt every --ckpt-minutes (and at the end). At the end exports an
F16 Hugging Face folder.

Resumable: the checkpoint holds the model, the optimizer, the step, the data sampler's RNG state (which is
the data position: batches are drawn from it) and torch's RNG state, so `--resume` continues exactly where
the run stopped and a run split into sessions equals one uninterrupted run. `--stop-at-step N` ends a
session at step N (checkpoint, no export); `--resume` with a larger --tokens continues a finished run (the
cosine schedule then stretches over the new total). The model's shape must not change on resume. Without
--resume, an existing checkpoint in --run-dir is an error (never overwritten silently).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from model import LlamaConfig, LlamaForCausalLM  # noqa: E402
from hf_io import export_hf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Arguments that fix the model's shape (and the sampler's seed): a resumed run must use the same ones.
SHAPE_ARGS = ("layers", "hidden", "heads", "kv_heads", "ffn", "ctx", "vocab", "batch", "seed")


def get_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=688)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--tokens", type=int, default=3_000_000, help="training token budget")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-tokens", type=int, default=65536)
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=os.path.join(ROOT, "tools/corpus/out"))
    ap.add_argument("--run-dir", default=os.path.join(ROOT, "tools/pretrain/runs/demo"))
    ap.add_argument("--export", default=os.path.join(ROOT, "public/models/demo"))
    ap.add_argument("--resume", action="store_true", help="continue from <run-dir>/ckpt.pt (model, optimizer, data position, RNG)")
    ap.add_argument("--stop-at-step", type=int, default=0, help="end this session after this step: checkpoint, no export; 0=off")
    ap.add_argument("--max-minutes", type=float, default=0, help="wall-time budget: the cosine schedule follows max(step, time) progress and training stops (and exports) when it is spent; 0=off")
    return ap.parse_args()


def batches_eval(val, ctx, n_tokens, bs=16):
    """Fixed, non-overlapping validation windows (the same every evaluation)."""
    n_win = min(n_tokens // ctx, (len(val) - 1) // ctx)
    for i in range(0, n_win, bs):
        idx = range(i, min(i + bs, n_win))
        x = np.stack([val[j * ctx:(j + 1) * ctx] for j in idx]).astype(np.int64)
        y = np.stack([val[j * ctx + 1:(j + 1) * ctx + 1] for j in idx]).astype(np.int64)
        yield torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def evaluate(model, val, ctx, n_tokens):
    model.eval()
    tot, n = 0.0, 0
    for x, y in batches_eval(val, ctx, n_tokens):
        _, loss = model(x, y)
        tot += loss.item() * y.numel()
        n += y.numel()
    model.train()
    return tot / n


def main():
    a = get_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = np.memmap(os.path.join(a.data, "train.bin"), dtype=np.uint16, mode="r")
    val = np.memmap(os.path.join(a.data, "valid.bin"), dtype=np.uint16, mode="r")
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      max_position_embeddings=a.ctx, bos_token_id=a.vocab - 1, eos_token_id=a.vocab - 1)
    model = LlamaForCausalLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    tokens_per_step = a.batch * a.ctx
    total_steps = max(1, a.tokens // tokens_per_step)
    os.makedirs(a.run_dir, exist_ok=True)
    ckpt_path = os.path.join(a.run_dir, "ckpt.pt")
    step, elapsed, history = 0, 0.0, []
    rng = np.random.default_rng(a.seed)
    if os.path.exists(ckpt_path) and not a.resume:
        sys.exit(f"train.py: {ckpt_path} exists: pass --resume to continue it, or choose another --run-dir")
    if a.resume:
        if not os.path.exists(ckpt_path):
            sys.exit(f"train.py: --resume: no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path)
        before = ck["args"]
        for k in SHAPE_ARGS:
            if before.get(k) != getattr(a, k):
                sys.exit(f"train.py: --resume: {ckpt_path} was trained with --{k.replace('_', '-')} {before.get(k)}, not {getattr(a, k)}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, history = ck["step"], ck["elapsed"], ck["history"]
        if "rng" not in ck:
            sys.exit(f"train.py: --resume: {ckpt_path} predates resumable checkpoints (no data-sampler state)")
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from step {step}", flush=True)
    print(f"params {model.num_params():,}  steps {total_steps}  tokens/step {tokens_per_step}", flush=True)

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        p = min(1.0, (s - a.warmup) / max(1, total_steps - a.warmup))
        if a.max_minutes:
            # On a shared machine throughput varies; anneal by whichever budget runs out first.
            p = max(p, min(1.0, elapsed / (a.max_minutes * 60)))
        return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))

    def save():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "history": history, "args": vars(a), "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt_path)

    t_last_ckpt = time.time()
    t0 = time.time() - elapsed
    model.train()
    while step < total_steps:
        ts = time.time()
        starts = rng.integers(0, len(train) - a.ctx - 1, a.batch)
        x = torch.from_numpy(np.stack([train[s:s + a.ctx] for s in starts]).astype(np.int64))
        y = torch.from_numpy(np.stack([train[s + 1:s + a.ctx + 1] for s in starts]).astype(np.int64))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.time() - t0
        if step % 10 == 0 or step <= 5:
            tps = tokens_per_step / (time.time() - ts)
            print(f"step {step}/{total_steps} loss {loss.item():.4f} lr {lr_at(step):.2e} "
                  f"tok/s {tps:.0f} elapsed {elapsed / 60:.1f}m", flush=True)
        if step % a.eval_every == 0 or step == total_steps:
            vl = evaluate(model, val, a.ctx, a.eval_tokens)
            history.append({"step": step, "tokens": step * tokens_per_step, "train_loss": loss.item(),
                            "val_loss": vl, "elapsed_s": elapsed})
            print(f"  eval step {step} val_loss {vl:.4f} ppl {math.exp(vl):.1f}", flush=True)
        if time.time() - t_last_ckpt > a.ckpt_minutes * 60:
            save()
            t_last_ckpt = time.time()
            print(f"  checkpoint at step {step}", flush=True)
        if a.max_minutes and elapsed > a.max_minutes * 60:
            print("  max-minutes reached, stopping early", flush=True)
            break
        if a.stop_at_step and step >= a.stop_at_step and step < total_steps:
            save()
            print(f"  stopped at step {step} (--stop-at-step); continue with --resume", flush=True)
            return
    save()
    summary = {"steps": step, "tokens_seen": step * tokens_per_step, "train_seconds": elapsed,
               "params": model.num_params(), "history": history, "args": vars(a)}
    with open(os.path.join(a.run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if a.export:
        export_hf(model, a.export)
        print(f"exported to {a.export}", flush=True)


if __name__ == "__main__":
    main()
