"""Document-side variants measured on both development sets with the portal's model: how an
article is cut into vectors, and how its chunks' cosines become the article's score.

    python bench/chunk_lab.py /tmp/fusion.pkl [part of variant names]
    python bench/chunk_lab.py lifts /tmp/fusion.pkl   # the title's lift from a second vector

Replays the fusion captured by `bench/fusion_lab.py capture` (the questions' vectors as the
portal's query encoder made them, after spelling correction; keyword candidates; title
cosines) with each article's meaning score recomputed from other chunks, embedded by the
portal's article encoder (`load_encoder`, as `semantic.sync_embeddings` does). The floors and
the fusion are today's (`semantic` constants), so a variant also moves which questions count
as unrelated. Prints, per variant, how many per-kind R@1/R@5 figures fall under the best single
ranker (meaning alone with today's chunks or with the variant's, whichever is higher), then
per set and path R@1/R@5/MRR@10 of all questions and how many unrelated ones got nothing; with
a name filter, every kind. Embeddings are cached in /tmp/chunk_lab-cache.pkl.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import fusion_lab as fl  # noqa: E402
import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402

from portal.kb.markdown import plain_text  # noqa: E402
from portal.search import semantic  # noqa: E402
from portal.search.embeddings import load_encoder  # noqa: E402

CACHE = Path("/tmp/chunk_lab-cache.pkl")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")


def sentences(body: str) -> list[str]:
    return [s for s in _SENTENCE.split(plain_text(body)) if s.strip()]


def windows(title: str, body: str, size: int, step: int, limit: int = 40) -> list[str]:
    """Runs of `size` sentences every `step`, each after the title, at most 100 words."""
    found = sentences(body)
    out = []
    for start in range(0, max(len(found) - size + step, 1), step):
        words = " ".join(found[start:start + size]).split()[:semantic.CHUNK_WORDS]
        out.append(f"{title}. {' '.join(words)}".strip())
    return out[:limit]


def first_paragraph(body: str) -> str:
    for block in re.split(r"\n\s*\n", body or ""):
        text = plain_text(block)
        if text and not text.startswith("#"):
            return " ".join(text.split()[:semantic.CHUNK_WORDS])
    return ""


def today(title: str, body: str) -> list[str]:
    return [c.text for c in semantic.chunk_article(title, body)]


def words(count: int) -> Callable:
    def cut(title: str, body: str) -> list[str]:
        saved = semantic.CHUNK_WORDS
        semantic.CHUNK_WORDS = count
        try:
            return [c.text for c in semantic.chunk_article(title, body)]
        finally:
            semantic.CHUNK_WORDS = saved
    return cut


def untitled(title: str, body: str) -> list[str]:
    return [c.text[len(title) + 1:].strip() for c in semantic.chunk_article(title, body)]


def plus_first_sentence(title: str, body: str) -> list[str]:
    found = sentences(body)
    return today(title, body) + ([f"{title}. {found[0]}"] if found else [])


def plus_first_paragraph(title: str, body: str) -> list[str]:
    para = first_paragraph(body)
    return today(title, body) + ([f"{title}. {para}"] if para else [])


def plus_windows(size: int, step: int) -> Callable:
    return lambda title, body: today(title, body) + windows(title, body, size, step)


CHUNKINGS: dict[str, Callable] = {  # the cheapest to embed first
    "today (100 words, title first)": today,
    "+ title and first sentence": plus_first_sentence,
    "+ first paragraph": plus_first_paragraph,
    "no title prefix": untitled,
    "60 words": words(60),
    "50 words": words(50),
    "3 sentences step 2": lambda t, b: windows(t, b, 3, 2),
    "2 sentences step 1": lambda t, b: windows(t, b, 2, 1),
    "+ 3 sentences step 2": plus_windows(3, 2),
}


def aggregate_max(chunk: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    best = np.full(count, -1.0)
    np.maximum.at(best, owner, chunk)
    return best


def best_plus_second(weight: float) -> Callable:
    def agg(chunk, owner, count):
        order = np.lexsort((-chunk, owner))
        first = np.r_[True, owner[order][1:] != owner[order][:-1]]
        best = np.full(count, -1.0)
        best[owner[order[first]]] = chunk[order[first]]
        second_rows = order[1:][~first[1:] & first[:-1]]
        second = np.zeros(count)
        second[owner[second_rows]] = np.maximum(chunk[second_rows], 0.0)
        return best + weight * second
    return agg


def log_mean_exp(temperature: float) -> Callable:
    """t * log(sum(exp(cos / t))): the best chunk, plus up to t * log(n) when n chunks are
    about as close (an article that answers in several places gains; none loses its best)."""
    def agg(chunk, owner, count):
        best = aggregate_max(chunk, owner, count)
        weights = np.exp((chunk - best[owner]) / temperature)
        total = np.zeros(count)
        np.add.at(total, owner, weights)
        return best + temperature * np.log(total)
    return agg


AGGREGATIONS: dict[str, Callable] = {
    "max": aggregate_max,
    "max + 0.05 second": best_plus_second(0.05),
    "max + 0.1 second": best_plus_second(0.1),
    "lse t=0.01": log_mean_exp(0.01),
    "lse t=0.02": log_mean_exp(0.02),
}


def _embed(texts: list[str], cache: dict, encoder) -> np.ndarray:
    todo = sorted({t for t in texts if t not in cache})
    if todo:
        for start in range(0, len(todo), 256):
            batch = todo[start:start + 256]
            cache.update(zip(batch, encoder.encode(batch), strict=True))
    return np.stack([cache[t] for t in texts]).astype(np.float32)


def main(path: str, only: str = "") -> None:
    with open(path, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab.py wrote)
    fl._prepare(lab)
    cache = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}  # noqa: S301
    encoder = load_encoder()
    fused = fl.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                     lambda c: c["cosine"] + semantic.TITLE_WEIGHT
                     * np.maximum(c["title"] - c["cosine"], 0.0))
    alone = fl.bonus(0.0, 1.0)
    baseline = {(s, label): fl.evaluate(data, label, alone)
                for s, data in lab.items() for label in fl.PATHS}
    faqs = {s: list(sq.SETS[s].load()) for s in lab}
    for chunk_name, chunking in CHUNKINGS.items():
        if not any(only in f"{chunk_name} / {agg_name}" for agg_name in AGGREGATIONS):
            continue
        vectors, owners = {}, {}
        for s, data in lab.items():
            if len(faqs[s]) != len(data["articles"]):  # imported in FAQ order
                raise SystemExit(f"{s}: {len(faqs[s])} entries, {len(data['articles'])} articles")
            texts, owner = [], []
            for number, faq in enumerate(faqs[s]):
                for text in chunking(faq.title, faq.body):
                    texts.append(text)
                    owner.append(number)
            vectors[s], owners[s] = _embed(texts, cache, encoder), np.asarray(owner)
        CACHE.write_bytes(pickle.dumps(cache))
        for agg_name, aggregate in AGGREGATIONS.items():
            title = f"{chunk_name} / {agg_name}"
            if only not in title:
                continue
            for s, data in lab.items():
                for row in data["rows"]:
                    for label in fl.PATHS:
                        c = row[label]
                        if "vector" in c:
                            c.setdefault("cosine_today", c["cosine"])
                            c["cosine"] = aggregate(vectors[s] @ c["vector"], owners[s],
                                                    len(data["articles"]))
            below, cells, lines = 0, [], []
            for s, data in lab.items():
                for label in fl.PATHS:
                    own = fl.evaluate(data, label, alone)
                    result = fl.evaluate(data, label, fused)
                    base = baseline[s, label]
                    below += sum(result[k][m] < max(base[k][m], own[k][m]) - 1e-9
                                 for k in sq.KINDS for m in (0, 1))
                    r1, r5, mrr = result["all"]
                    a1, a5, _am = own["all"]
                    cells.append(f"{s[:3]}/{label[:3]} {r1:.3f}/{r5:.3f}/{mrr:.3f} "
                                 f"(alone {a1:.3f}/{a5:.3f}) "
                                 f"unrel {result[sq.UNRELATED][0]:.2f}")
                    lines.append(f"  {s:<6} {label:<7} " + " ".join(
                        f"{k[:5]} {result[k][0]:.3f}/{result[k][1]:.3f}/{result[k][2]:.3f}"
                        for k in (*sq.KINDS, "all")))
            print(f"{title}: {below} under best single; {'; '.join(cells)}", flush=True)
            if only:
                print("\n".join(lines), flush=True)
        for data in lab.values():
            for row in data["rows"]:
                for label in fl.PATHS:
                    if "cosine_today" in row[label]:
                        row[label]["cosine"] = row[label]["cosine_today"]




MAX_WITH_TITLE = os.environ.get("LIFT_REPLACES_TITLE") is None
LIFTS: dict[str, Callable] = {
    "title and first sentence": lambda t, b: f"{t}. {(sentences(b) or [''])[0]}".strip(),
    "title and first paragraph": lambda t, b: f"{t}. {first_paragraph(b)}".strip(),
}


def lifts(path: str) -> None:
    """Today's chunks (and floors) kept; the title's lift (TITLE_WEIGHT x how much closer the
    title is than the best chunk) read from the closer of the title and a second short
    vector (the answer's opening), at a few weights."""
    with open(path, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab.py wrote)
    fl._prepare(lab)
    cache = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}  # noqa: S301
    encoder = load_encoder()
    alone = fl.bonus(0.0, 1.0)
    baseline = {(s, label): fl.evaluate(data, label, alone)
                for s, data in lab.items() for label in fl.PATHS}
    faqs = {s: list(sq.SETS[s].load()) for s in lab}
    for lift_name, lift in LIFTS.items():
        vectors = {s: _embed([lift(f.title, f.body) for f in faqs[s]], cache, encoder)
                   for s in lab}
        CACHE.write_bytes(pickle.dumps(cache))
        for s, data in lab.items():
            for row in data["rows"]:
                for label in fl.PATHS:
                    c = row[label]
                    if "vector" in c:
                        c.setdefault("title_today", c["title"])
                        c["title"] = (np.maximum(c["title_today"], vectors[s] @ c["vector"])
                                      if MAX_WITH_TITLE else vectors[s] @ c["vector"])
        for weight in (0.1, 0.15, 0.2):
            fused = fl.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                             lambda c, w=weight: c["cosine"]
                             + w * np.maximum(c["title"] - c["cosine"], 0.0))
            below, cells = 0, []
            for s, data in lab.items():
                for label in fl.PATHS:
                    result = fl.evaluate(data, label, fused)
                    base = baseline[s, label]
                    below += sum(result[k][m] < base[k][m] - 1e-9
                                 for k in sq.KINDS for m in (0, 1))
                    r1, r5, mrr = result["all"]
                    kinds = " ".join(f"{k[:3]} {result[k][0]:.3f}/{result[k][1]:.3f}"
                                     for k in sq.KINDS)
                    cells.append(f"{s[:3]}/{label[:3]} {r1:.3f}/{r5:.3f}/{mrr:.3f} ({kinds}) "
                                 f"unrel {result[sq.UNRELATED][0]:.2f}")
            print(f"lift from {lift_name}, weight {weight}: {below} under meaning alone; "
                  + "; ".join(cells), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "lifts":
        lifts(sys.argv[2])
    else:
        main(*sys.argv[1:3])
