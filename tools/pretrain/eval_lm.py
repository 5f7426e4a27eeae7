#!/usr/bin/env python3
"""Validation loss/perplexity of the exported demo model vs a unigram baseline, plus generations.

  /usr/bin/python3 tools/pretrain/eval_lm.py --model public/models/demo [--ckpt tools/pretrain/runs/demo/ckpt.pt]

Loads the F16 model.safetensors through hf_io.load_hf (so the numbers are those of the shipped
weights), scores every held-out token of tools/corpus/out/valid.bin in non-overlapping windows of
the model's context, and compares with a unigram model fitted on train.bin (add-one smoothing),
evaluated on exactly the same predicted tokens. Writes <run-dir>/eval_lm.json.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "corpus"))
from hf_io import load_hf  # noqa: E402
from model import LlamaConfig, LlamaForCausalLM  # noqa: E402
from bpe import load as load_tok  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_model(model_dir, ckpt=None):
    if ckpt:
        cfg = LlamaConfig.from_hf(json.load(open(os.path.join(model_dir, "config.json"))))
        m = LlamaForCausalLM(cfg)
        m.load_state_dict(torch.load(ckpt)["model"])
        return m.eval()
    return load_hf(model_dir)


@torch.no_grad()
def generate(model, ids, n, temperature=0.0, top_k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = list(ids)
    ctx = model.cfg.max_position_embeddings
    for _ in range(n):
        logits = model(torch.tensor([ids[-ctx:]]))[0, -1]
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            v, i = torch.topk(logits / temperature, top_k)
            nxt = int(i[torch.multinomial(torch.softmax(v, -1), 1, generator=g)])
        ids.append(nxt)
        if nxt == model.cfg.eos_token_id:
            break
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "public/models/demo"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--data", default=os.path.join(ROOT, "tools/corpus/out"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tools/pretrain/runs/demo/eval_lm.json"))
    ap.add_argument("--max-tokens", type=int, default=0, help="0 = the whole validation split")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model(a.model, a.ckpt)
    ctx = model.cfg.max_position_embeddings
    V = model.cfg.vocab_size
    train = np.fromfile(os.path.join(a.data, "train.bin"), dtype=np.uint16)
    val = np.fromfile(os.path.join(a.data, "valid.bin"), dtype=np.uint16).astype(np.int64)
    if a.max_tokens:
        val = val[: a.max_tokens + 1]
    counts = np.bincount(train, minlength=V).astype(np.float64) + 1.0
    logp_uni = np.log(counts / counts.sum())
    n_win = (len(val) - 1) // ctx
    tot, n, uni = 0.0, 0, 0.0
    for i in range(0, n_win, 16):
        idx = range(i, min(i + 16, n_win))
        x = torch.from_numpy(np.stack([val[j * ctx:(j + 1) * ctx] for j in idx]))
        y = torch.from_numpy(np.stack([val[j * ctx + 1:(j + 1) * ctx + 1] for j in idx]))
        with torch.no_grad():
            _, loss = model(x, y)
        tot += loss.item() * y.numel()
        n += y.numel()
        uni += -logp_uni[y.numpy()].sum()
    res = {"val_tokens": n, "val_loss": tot / n, "val_ppl": math.exp(tot / n), "unigram_loss": uni / n,
           "unigram_ppl": math.exp(uni / n)}
    print(f"validation tokens {n}: model loss {res['val_loss']:.4f} ppl {res['val_ppl']:.2f} | "
          f"unigram loss {res['unigram_loss']:.4f} ppl {res['unigram_ppl']:.2f}", flush=True)
    tok = load_tok(a.model)
    eot = tok.vocab["<|endoftext|>"]
    samples = []
    for prompt in ["Call me Ishmael. Some years ago", "Review: This movie was", "Fellow-Citizens of the Senate and House of Representatives:"]:
        ids = [eot] + tok.encode(prompt)
        greedy = tok.decode(generate(model, ids, 48)[1:])
        sampled = tok.decode(generate(model, ids, 48, temperature=0.8, top_k=40, seed=1)[1:])
        samples.append({"prompt": prompt, "greedy": greedy, "sampled_t0.8_k40_seed1": sampled})
        print(f"--- {prompt!r}\n[greedy] {greedy}\n[sampled] {sampled}", flush=True)
    res["samples"] = samples
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump(res, open(a.out, "w"), indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
