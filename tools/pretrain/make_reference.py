#!/usr/bin/env python3
"""Reference numbers for the TypeScript engine: load public/models/demo exactly as shipped (F16
safetensors, upcast to f32) and record, for a few held-out texts, the token ids, the mean next-token
cross-entropy and the first logits, in tools/pretrain/reference_demo.json. An engine test loading
the same folder through the Hugging Face path must reproduce these (to f32 rounding).

  tools/pretrain/with_openblas.sh /usr/bin/python3 tools/pretrain/make_reference.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "corpus"))
from bpe import load as load_tok  # noqa: E402
from hf_io import load_hf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEXTS = [
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little.",
    "Definition: a domesticated carnivorous mammal that is kept as a pet\nWord: dog",
    "Review: A wonderful film with a moving story and great acting. I loved it.\nSentiment: positive",
]


def main():
    torch.set_num_threads(2)
    model_dir = os.path.join(ROOT, "public/models/demo")
    model = load_hf(model_dir)
    tok = load_tok(model_dir)
    eot = tok.vocab["<|endoftext|>"]
    cases = []
    for t in TEXTS:
        ids = [eot] + tok.encode(t)
        x = torch.tensor([ids[:-1]])
        y = torch.tensor([ids[1:]])
        with torch.no_grad():
            logits, loss = model(x, y)
        cases.append({"text": t, "input_ids": ids, "mean_loss_next_token": loss.item(),
                      "logits_pos0_first16": [round(v, 5) for v in logits[0, 0, :16].tolist()],
                      "logits_last_first16": [round(v, 5) for v in logits[0, -1, :16].tolist()],
                      "argmax_per_position": logits[0].argmax(-1).tolist()})
    out = {"model": "public/models/demo", "note": "input_ids include the leading <|endoftext|>; loss = mean "
           "cross-entropy of input_ids[1:] given input_ids[:-1], f32 compute on the F16 weights", "cases": cases}
    with open(os.path.join(ROOT, "tools/pretrain/reference_demo.json"), "w") as f:
        json.dump(out, f, indent=1)
    for c in cases:
        print(round(c["mean_loss_next_token"], 5), c["text"][:50])


if __name__ == "__main__":
    main()
