"""Fusion variants compared offline: the fusion's inputs for every development question are
captured once through the app's own suggestion and search code, then each variant re-ranks
them in memory (seconds per variant instead of minutes per bench run).

    python bench/fusion_lab.py capture /tmp/fusion.pkl     # both sets, ~4 min on idle cores
    python bench/fusion_lab.py capture /tmp/fusion-pg.pkl postgres  # $PORTAL_TEST_POSTGRES_URL
    python bench/fusion_lab.py compare /tmp/fusion.pkl [part of variant names]

`compare` prints, per set, path (suggest, search) and kind, recall@1/@5 of each variant, and
how many of those figures fall below meaning alone (the must-be-true of issue 15). Captured
per question: the keyword candidates with their scores and shares, the coverage (computed
for every question, not only those under the floor), whether the words were corrected, the
query vector, and every article's best chunk cosine; plus the title and lead vectors the app
stored for each article (the title alone, and the title with the body's first sentence).
The variants reuse `semantic.fuse`'s gate (floors, coverage) and differ in the scoring only.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402
from sqlalchemy import select  # noqa: E402

from portal.extensions import db  # noqa: E402
from portal.kb.models import Article  # noqa: E402
from portal.search import Audience, search_articles, semantic, suggest_articles  # noqa: E402
from portal.search import service as search_service  # noqa: E402

PATHS = {
    "suggest": lambda text: [h.article_id for h in suggest_articles(text, Audience.PUBLIC,
                                                                    limit=10)],
    "search": lambda text: [h.article_id for h in search_articles(text, Audience.PUBLIC,
                                                                  per_page=10).hits],
}


def capture(path: str, backend: str = "whoosh") -> None:
    unrelated = [q for s in sq.SETS.values() for q in sq.load_queries(s.queries_file)
                 if q.kind == sq.UNRELATED]
    real = (semantic.clears_floor, semantic.fuse, semantic.nearest_articles)
    seen: dict = {}

    def nearest(text, audience, generation, limit):
        seen.update(text=text, vector=semantic.embed_query(semantic.query_encoder(), text))
        return real[2](text, audience, generation, limit)

    def fuse(keyword, nearest_, coverage, *, shares, corrected=False, titles=None,
             learned=None):
        semantic.clears_floor = real[0]  # the real gate decides what is shown
        try:
            return real[1](keyword, nearest_, coverage, shares=shares, corrected=corrected,
                           titles=titles, learned=learned)
        finally:
            semantic.clears_floor = lambda *_a, **_k: False
            seen.update(keyword=list(keyword), coverage=coverage, shares=dict(shares),
                        corrected=corrected)

    out = {}
    for name, dev_set in sq.SETS.items():
        queries = sq.load_queries(dev_set.queries_file)
        asked = {q.text.lower() for q in queries}
        for q in unrelated:  # as the bench asks them: each once
            if q.text.lower() not in asked:
                asked.add(q.text.lower())
                queries.append(q)
        with tempfile.TemporaryDirectory() as folder:
            app = sq.make_app(Path(folder), os.environ["PORTAL_TEST_POSTGRES_URL"]
                              if backend == "postgres" else None)
            ids = sq.import_faq(app, dev_set)
            app.config.update(sq.MODES["hybrid"])
            with app.test_request_context():
                rows = []
                # Coverage is computed for every question (clears_floor False while ranking).
                semantic.nearest_articles, semantic.fuse = nearest, fuse
                semantic.clears_floor = lambda *_a, **_k: False
                try:
                    for q in queries:
                        row = {"kind": q.kind, "text": q.text,
                               "targets": {ids[k] for k in q.keys}}
                        for label, ranked in PATHS.items():
                            search_service._cache.__init__(search_service.CACHE_SIZE)
                            seen.clear()
                            hits = ranked(q.text)
                            row[label] = dict(seen, hits=hits)
                        rows.append(row)
                finally:
                    semantic.clears_floor, semantic.fuse, semantic.nearest_articles = real
                matrix = semantic._matrix()
                title_ids, title_vectors, lead_vectors = matrix.titles
                out[name] = {
                    "rows": rows, "vectors": np.array(matrix.vectors),
                    "article_ids": np.array(matrix.article_ids),
                    "titles": dict(db.session.execute(select(Article.id, Article.title)).all()),
                    "title_ids": np.array(title_ids), "title_vectors": np.array(title_vectors),
                    "lead_vectors": np.array(lead_vectors)}
    with open(path, "wb") as f:
        pickle.dump(out, f)


# --- offline re-ranking ------------------------------------------------------------------
def _prepare(lab: dict) -> None:
    """Every article's best chunk cosine and title cosine per question (aligned arrays):
    "title" the closer of the title alone and the title with its lead (as the portal reads
    it), "title_alone" the title's own."""
    for data in lab.values():
        articles = np.unique(data["article_ids"])
        data["articles"] = articles
        row_article = np.searchsorted(articles, data["article_ids"])
        data["row_article_index"] = row_article
        title_at = np.searchsorted(articles, data["title_ids"])
        for row in data["rows"]:
            for label in PATHS:
                c = row[label]
                if "vector" not in c:  # keyword syntax: no meaning-based ranking ran
                    continue
                chunk = data["vectors"] @ c["vector"]
                best = np.full(len(articles), -1.0)
                np.maximum.at(best, row_article, chunk)
                title = np.full(len(articles), -1.0)
                title[title_at] = data["title_vectors"] @ c["vector"]
                lead = title.copy()
                if "lead_vectors" in data:  # captured before leads: the title alone
                    lead[title_at] = data["lead_vectors"] @ c["vector"]
                c["cosine"], c["title"], c["title_alone"] = best, np.maximum(title, lead), title
                # the second-best chunk's cosine per article (-1 for a single chunk)
                order = np.lexsort((-chunk, row_article))
                first = np.r_[True, row_article[order][1:] != row_article[order][:-1]]
                second_rows = order[1:][~first[1:] & first[:-1]]
                second = np.full(len(articles), -1.0)
                second[row_article[second_rows]] = chunk[second_rows]
                c["second"] = second
                c["best_row"] = order[first]  # aligned with `articles` (all have a chunk)
                c["_data"] = data


def _title_shares(lab: dict) -> None:
    """c["title_share"]: per article, the share of the question's words (analysed as the
    index analyses them, idf-weighted over titles and bodies) its title holds."""
    from portal.search.schema import TEXT_ANALYZER

    def words(text: str) -> set[str]:
        return {token.text for token in TEXT_ANALYZER(text)}

    for name, data in lab.items():
        faqs = list(sq.SETS[name].load())  # imported in FAQ order: ids ascending
        title_words = [words(f.title) for f in faqs]
        documents = [t | words(f.body) for t, f in zip(title_words, faqs, strict=True)]
        frequency: dict[str, int] = {}
        for found in documents:
            for word in found:
                frequency[word] = frequency.get(word, 0) + 1
        for row in data["rows"]:
            for label in PATHS:
                c = row[label]
                if "vector" not in c:
                    continue
                asked = words(c["text"])
                weight = {w: float(np.log1p(len(faqs) / (frequency.get(w, 0) + 0.5)))
                          for w in asked}
                total = sum(weight.values()) or 1.0
                c["title_share"] = np.array([sum(weight[w] for w in asked & t) / total
                                             for t in title_words])


def gated(score: Callable, title_floor: float | None = None) -> Callable:
    """A variant with `semantic.fuse`'s gate: nothing for unrelated questions, the keyword
    order for questions related by keywords only, else `score`'s order (meaning-only
    candidates from ITEM_FLOOR up). `title_floor`: the gate also wants the closest title (or
    title with its lead) among the candidates at least that close."""
    def ranked(c: dict, articles: np.ndarray) -> list[int]:
        cosine = c["cosine"]
        best = float(cosine.max())
        floor = semantic.CORRECTED_QUERY_FLOOR if c["corrected"] else semantic.QUERY_FLOOR
        if title_floor is not None and best >= floor:
            position = {int(a): i for i, a in enumerate(articles)}
            candidates = [*np.argsort(-cosine)[:semantic.CANDIDATES],
                          *(position[a] for a, _s in c["keyword"])]
            if float(c["title"][candidates].max()) < title_floor:
                best = -1.0
        if best < floor:
            return [a for a, _s in c["keyword"]] \
                if c["coverage"] >= semantic.KEYWORD_COVERAGE else []
        position = {int(a): i for i, a in enumerate(articles)}
        dense = score.dense(c) if hasattr(score, "dense") else cosine
        scores = score(c, dense, position)
        for i in np.argsort(-cosine)[:semantic.CANDIDATES]:
            if cosine[i] < semantic.ITEM_FLOOR:
                break
            scores.setdefault(int(articles[i]), float(dense[i]))
        return sorted(scores, key=scores.__getitem__, reverse=True)
    return ranked


def bonus(alpha: float, power: float, dense: Callable | None = None,
          title_floor: float | None = None) -> Callable:
    """cosine (or `dense`) + alpha * share * (keyword score / best keyword score) ** power"""
    def score(c, values, position):
        keyword = c["keyword"]
        top = keyword[0][1] if keyword and keyword[0][1] > 0 else 1.0
        return {a: float(values[position[a]])
                + alpha * c["shares"].get(a, 0.0) * max(s / top, 0.0) ** power
                for a, s in keyword}
    if dense is not None:
        score.dense = dense
    return gated(score, title_floor)


def reciprocal_rank(k: int, weight: float) -> Callable:
    def ranked(c, articles):
        base = gated(lambda c, values, position: {})(c, articles)
        if not base or float(c["cosine"].max()) < semantic.QUERY_FLOOR:
            return base
        order = np.argsort(-c["cosine"])[:semantic.CANDIDATES]
        scores = {int(articles[i]): 1 / (k + r + 1) for r, i in enumerate(order)}
        for r, (a, _s) in enumerate(c["keyword"]):
            scores[a] = scores.get(a, 0.0) + weight / (k + r + 1)
        return sorted(scores, key=scores.__getitem__, reverse=True)
    return ranked


def z_scores(c):
    return (c["cosine"] - c["cosine"].mean()) / c["cosine"].std()


def title_mix(weight: float):
    return lambda c: (1 - weight) * c["cosine"] + weight * np.maximum(c["cosine"], c["title"])


def rocchio(alpha: float, k: int, source: str = "meaning", toward: str = "chunk") -> Callable:
    """The question vector moved toward its top-k articles' best chunks, or (`toward`
    "title") their title and lead vectors (pseudo-relevance feedback: q' = q + alpha * mean),
    then every article scored by its best chunk against q' (and lifted toward its title or
    lead against q' as the portal does, when `toward` is "title").
    source "meaning": the k nearest articles; "fused": the k first of today's fusion;
    "agree": the first k of the nearest list that are keyword candidates too."""
    def dense(c):
        data, cosine = c["_data"], c["cosine"]
        if source == "meaning":
            top = np.argsort(-cosine)[:k]
        else:
            position = {int(a): i for i, a in enumerate(data["articles"])}
            if source == "fused":
                fused = VARIANTS["0.1 power 0.25 (before)"](c, data["articles"])
                top = [position[a] for a in fused[:k]]
            else:
                held = {a for a, _s in c["keyword"][:10]}
                top = [i for i in np.argsort(-cosine)[:10] if int(data["articles"][i]) in held][:k]
            if not top:
                return cosine
        if toward == "title":
            at = np.searchsorted(data["title_ids"], data["articles"][top])
            centroid = np.vstack([data["title_vectors"][at], data["lead_vectors"][at]]).mean(axis=0)
        else:
            centroid = data["vectors"][c["best_row"][top]].mean(axis=0)
        moved = c["vector"] + alpha * centroid
        moved = moved / np.linalg.norm(moved)
        best = np.full(len(cosine), -1.0)
        np.maximum.at(best, data["row_article_index"], data["vectors"] @ moved)
        if toward == "title":
            title = best.copy()
            at = np.searchsorted(data["articles"], data["title_ids"])
            title[at] = np.maximum(data["title_vectors"] @ moved, data["lead_vectors"] @ moved)
            best = best + semantic.TITLE_WEIGHT * np.maximum(title - best, 0.0)
        return best
    return dense


def second_chunk(weight: float) -> Callable:
    return lambda c: c["cosine"] + weight * np.maximum(c["second"], 0.0) \
        * (c["second"] > -1) if weight else c["cosine"]


VARIANTS = {
    "meaning alone": bonus(0.0, 1.0),
    "0.2 linear (before)": bonus(0.2, 1.0),
    "0.1 power 0.25 (before)": bonus(0.1, 0.25),
    "title above 0.1, 0.12 power 0.25 (title alone: before)": bonus(
        0.12, semantic.KEYWORD_SCORE_POWER,
        lambda c: c["cosine"] + 0.1 * np.maximum(c["title_alone"] - c["cosine"], 0.0)),
    "title or lead above 0.1, 0.12 power 0.25 (now)": bonus(
        semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
        lambda c: c["cosine"] + semantic.TITLE_WEIGHT * np.maximum(c["title"] - c["cosine"], 0.0)),
    **{f"{a} power {p}": bonus(a, p) for a in (0.1, 0.125, 0.15) for p in (0.0, 0.5, 1.0)},
    "share only 0.15": bonus(0.15, 0.0),
    "RRF k=10": reciprocal_rank(10, 0.5),
    "RRF k=60": reciprocal_rank(60, 1.0),
    "z-score 1.0 linear": bonus(1.0, 1.0, z_scores),
    "z-score 1.25 power 0.25": bonus(1.25, 0.25, z_scores),
    "title mix 0.5": bonus(0.2, 1.0, title_mix(0.5)),
    "title max": bonus(0.2, 1.0, lambda c: np.maximum(c["cosine"], c["title"])),
    **{f"rocchio {src} a={a} k={k}": bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                                         rocchio(a, k, src))
       for src in ("meaning", "fused", "agree") for a in (0.1, 0.2, 0.35, 0.5)
       for k in (1, 2, 3, 5)},
    **{f"rocchio toward titles {src} a={a} k={k}": bonus(
        semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER, rocchio(a, k, src, "title"),
        title_floor=semantic.TITLE_FLOOR)
       for src in ("meaning", "fused", "agree") for a in (0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.35)
       for k in (1, 2, 3)},
    **{f"title above {w} alpha {a}": bonus(a, semantic.KEYWORD_SCORE_POWER,
                                          lambda c, w=w: c["cosine"]
                                          + w * np.maximum(c["title"] - c["cosine"], 0.0))
       for w in (0.05, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4) for a in (0.1, 0.12, 0.15, 0.18)},
    **{f"second chunk {w}": bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                                  second_chunk(w)) for w in (0.02, 0.05, 0.1, 0.2)},
    **{f"title floor {f}": bonus(
        semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
        lambda c: c["cosine"] + semantic.TITLE_WEIGHT * np.maximum(c["title"] - c["cosine"], 0.0),
        title_floor=f) for f in (0.2, 0.22, 0.24, 0.26, 0.27, 0.28, 0.29, 0.3, 0.32)},
    **{f"title words {b}{' alpha ' + str(a) if a != semantic.KEYWORD_ALPHA else ''}": bonus(
        a, semantic.KEYWORD_SCORE_POWER,
        lambda c, b=b: c["cosine"] + semantic.TITLE_WEIGHT
        * np.maximum(c["title"] - c["cosine"], 0.0) + b * c["title_share"])
       for b in (0.01, 0.02, 0.03, 0.04, 0.06, 0.08) for a in (0.08, 0.1, semantic.KEYWORD_ALPHA)},
}


def evaluate(data: dict, label: str, variant: Callable) -> dict:
    ranks: dict[str, list] = {}
    for row in data["rows"]:
        c = row[label]
        found = (variant(c, data["articles"]) if "cosine" in c else c["hits"])[:10]
        if row["kind"] == sq.UNRELATED:
            ranks.setdefault(sq.UNRELATED, []).append(not found)
            continue
        rank = next((i + 1 for i, a in enumerate(found) if a in row["targets"]), None)
        for kind in (row["kind"], "all"):
            ranks.setdefault(kind, []).append(rank)
    return {kind: (sum(r) / len(r),) if kind == sq.UNRELATED else
            (sum(x == 1 for x in r) / len(r), sum(x is not None and x <= 5 for x in r) / len(r),
             sum(1 / x for x in r if x is not None) / len(r))
            for kind, r in ranks.items()}


def compare(path: str, only: str = "") -> None:
    """Every variant whose name contains `only`: per set and path, each kind's R@1/R@5/MRR@10; a
    summary line per variant first (figures under meaning alone, then R@1/R@5 of all)."""
    with open(path, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file this script wrote)
    _prepare(lab)
    if "title words" in only:
        _title_shares(lab)
    baseline = {(name, label): evaluate(data, label, VARIANTS["meaning alone"])
                for name, data in lab.items() for label in PATHS}
    for title, variant in VARIANTS.items():
        if only not in title:
            continue
        below = 0
        lines, alls = [], []
        for name, data in lab.items():
            for label in PATHS:
                result = evaluate(data, label, variant)
                alls.append((name, label, *result["all"]))
                base = baseline[name, label]
                below += sum(result[k][m] < base[k][m] - 1e-9 for k in sq.KINDS for m in (0, 1))
                cells = " ".join(f"{k[:5]} {result[k][0]:.3f}/{result[k][1]:.3f}/{result[k][2]:.3f}"
                                 for k in (*sq.KINDS, "all"))
                lines.append(f"  {name:<6} {label:<7} {cells} unrelated-empty "
                             f"{result[sq.UNRELATED][0]:.3f}")
        summary = " ".join(f"{n[:3]}/{lb[:3]} {r1:.3f}/{r5:.3f}" for n, lb, r1, r5, _m in alls)
        print(f"{title}: {below} figures below meaning alone (R@1/R@5 per kind); {summary}")
        print("\n".join(lines))


if __name__ == "__main__":
    command, pickle_path = sys.argv[1:3]
    if command == "capture":
        capture(pickle_path, *sys.argv[3:4])
    else:
        compare(pickle_path, *sys.argv[3:4])
