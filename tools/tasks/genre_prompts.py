#!/usr/bin/env python3
"""Zero-shot scores of candidate prompt wordings for genre-mc on one split (default: valid).

  tools/pretrain/with_openblas.sh /usr/bin/python3 tools/tasks/genre_prompts.py valid

The wording of public/data/genre-mc was chosen from this table on the valid split (see its README).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pretrain"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "corpus"))
import torch  # noqa: E402
from bpe import load as load_tok  # noqa: E402
from eval_lm import load_model  # noqa: E402
from eval_tasks import ROOT, read, score_mc  # noqa: E402

TEMPLATES = ["Text: {p}\nSubject:", "{p}\nTopic:", "{p}\nThis text is about", "Passage: {p}\nThis passage is from a"]
CHOICES = [[" movies", " politics"], [" film", " government"], [" movie", " speech"], [" a movie", " a speech"],
           [" film", " politics"], [" review", " speech"], [" movie review", " political speech"]]


def main():
    split = sys.argv[1] if len(sys.argv) > 1 else "valid"
    torch.set_num_threads(1)
    model_dir = os.path.join(ROOT, "public/models/demo")
    model, tok = load_model(model_dir), load_tok(model_dir)
    prefix, suffix = "Passage: ", "\nThis passage is from a"
    rows = read("genre-mc", split)
    print("| context template | choices | acc | acc_norm |\n|---|---|---:|---:|")
    for t in TEMPLATES:
        for ch in CHOICES:
            items = [{"context": t.format(p=r["context"][len(prefix):-len(suffix)]), "choices": ch,
                      "label": r["label"]} for r in rows]
            s = score_mc(model, tok, items)
            print(f"| `{t!r}` | {' /'.join(ch)} | {s['acc']:.3f} | {s['acc_norm']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
