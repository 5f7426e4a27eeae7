#!/usr/bin/env python3
"""A small byte-level BPE (GPT-2 scheme) trainer/encoder that writes Hugging Face tokenizer.json.

Debian has no `tokenizers`/`regex` package, so the GPT-2 pre-tokenizer regex is rebuilt with
the stdlib `re` using explicit \\p{L} / \\p{N} character classes generated from unicodedata.

  /usr/bin/python3 tools/corpus/bpe.py train  --vocab 4096 --out public/models/demo
  /usr/bin/python3 tools/corpus/bpe.py encode --tok public/models/demo   (-> tools/corpus/out/*.bin)
"""
import argparse
import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict

import numpy as np

EOT = "<|endoftext|>"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tools/corpus/out")


def _class_for(prefix: str) -> str:
    ranges, start, prev = [], None, None
    for cp in range(0x110000):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            ranges.append((start, prev))
            start = None
    if start is not None:
        ranges.append((start, prev))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_L, _N = _class_for("L"), _class_for("N")
# Same alternatives, same order as GPT-2 / HF ByteLevel:
# 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
PAT = re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^\s{_L}{_N}]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def pretokenize(text: str):
    return ["".join(B2U[b] for b in w.encode("utf-8")) for w in PAT.findall(text)]


def train(texts, vocab_size: int):
    counts = Counter()
    for t in texts:
        counts.update(pretokenize(t))
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]
    pair_counts = defaultdict(int)
    where = defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    vocab = {B2U[b]: b for b in range(256)}
    merges = []
    n_target = vocab_size - 1  # last id is <|endoftext|>
    while len(vocab) < n_target and pair_counts:
        best = max(pair_counts, key=lambda p: (pair_counts[p], p))
        if pair_counts[best] < 2:
            break
        a, b = best
        new = a + b
        merges.append(best)
        if new not in vocab:
            vocab[new] = len(vocab)
        for i in list(where[best]):
            w, f = words[i], freqs[i]
            j, out = 0, []
            changed = False
            while j < len(w):
                if j < len(w) - 1 and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                    changed = True
                else:
                    out.append(w[j])
                    j += 1
            if not changed:
                continue
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                if pair_counts[p] <= 0:
                    del pair_counts[p]
                where[p].discard(i)
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(i)
            words[i] = out
        pair_counts.pop(best, None)
        where.pop(best, None)
        if len(merges) % 500 == 0:
            print(f"  {len(merges)} merges, vocab {len(vocab)}", file=sys.stderr)
    vocab[EOT] = len(vocab)
    return vocab, merges


class Encoder:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.cache = {}

    def bpe(self, word: str):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            best, rank = None, None
            for p in zip(syms, syms[1:]):
                r = self.ranks.get(p)
                if r is not None and (rank is None or r < rank):
                    best, rank = p, r
            if best is None:
                break
            a, b = best
            out, j = [], 0
            while j < len(syms):
                if j < len(syms) - 1 and syms[j] == a and syms[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text: str):
        ids = []
        for w in pretokenize(text):
            ids.extend(self.bpe(w))
        return ids

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        s = "".join(inv[i] for i in ids)
        return bytearray(U2B[c] for c in s).decode("utf-8", errors="replace")


def tokenizer_json(vocab, merges):
    eot_id = vocab[EOT]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eot_id, "content": EOT, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def load(tok_dir):
    tj = json.load(open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8"))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
    vocab = dict(tj["model"]["vocab"])
    for t in tj["added_tokens"]:
        vocab[t["content"]] = t["id"]
    return Encoder(vocab, merges)


def read_docs(split):
    with open(os.path.join(CORPUS, f"{split}.jsonl"), encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "encode"])
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", default=os.path.join(ROOT, "public/models/demo"))
    ap.add_argument("--tok", default=os.path.join(ROOT, "public/models/demo"))
    args = ap.parse_args()
    if args.cmd == "train":
        vocab, merges = train(read_docs("train"), args.vocab)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False)
        cfg = {"add_bos_token": False, "add_prefix_space": False, "bos_token": EOT, "eos_token": EOT,
               "unk_token": EOT, "pad_token": None, "model_max_length": 256, "tokenizer_class": "GPT2Tokenizer",
               "clean_up_tokenization_spaces": False, "errors": "replace"}
        with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        print(f"vocab {len(vocab)} merges {len(merges)}")
    else:
        enc = load(args.tok)
        eot = enc.vocab[EOT]
        for split in ("train", "valid"):
            ids = []
            for t in read_docs(split):
                ids.append(eot)  # every document starts after <|endoftext|>, as at inference
                ids.extend(enc.encode(t))
            arr = np.array(ids, dtype=np.uint16)
            arr.tofile(os.path.join(CORPUS, f"{split}.bin"))
            print(split, len(arr), "tokens")


if __name__ == "__main__":
    main()
