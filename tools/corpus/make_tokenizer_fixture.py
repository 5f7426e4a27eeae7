#!/usr/bin/env python3
"""Write tools/corpus/tokenizer_fixture.json: corpus/task lines with the ids our Python BPE encoder
gives them, so tokenizer.test.ts can check @huggingface/transformers produces exactly the same.

  /usr/bin/python3 tools/corpus/make_tokenizer_fixture.py
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bpe import ROOT, load, read_docs  # noqa: E402

rng = random.Random(5)
lines = []
for t in read_docs("valid"):
    lines += [l for l in t.split("\n") if l.strip()]
rng.shuffle(lines)
lines = lines[:300]
for task in ("imdb-sentiment-mc", "wordnet-def-mc"):
    rows = [json.loads(l) for l in open(os.path.join(ROOT, "public/data", task, "test.jsonl"), encoding="utf-8")][:20]
    lines += [r["context"] + r["choices"][r["label"]] for r in rows]
# Edge cases of the GPT-2 pre-tokenizer: contractions, digits, runs of spaces, newlines, non-ASCII.
lines += ["I'm sure they'll say it's 1,234.56 -- isn't it?", "  two  spaces\n\nand\ttab ", "café naïve — “quotes” 😀",
          "THE END.", "x" * 40, "don't   DON'T  'tis", "Ünïcödé Ωμέγα 北京 ½ ²"]
enc = load(os.path.join(ROOT, "public/models/demo"))
fixture = [{"text": l, "ids": enc.encode(l)} for l in lines]
with open(os.path.join(ROOT, "tools/corpus/tokenizer_fixture.json"), "w", encoding="utf-8") as f:
    json.dump(fixture, f, ensure_ascii=False, indent=0)
print(len(fixture), "lines,", sum(len(x["ids"]) for x in fixture), "tokens")
