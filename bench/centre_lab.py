"""Article vectors centred on the knowledge base, replayed on a fusion capture (issue 15,
ninth round): each vector (chunks, titles, leads, the question) has the knowledge base's
mean vector taken away (`beta` times it) and optionally its top principal directions
removed, then is normalised again; the fusion ranks by those cosines while the floors
(the gate) keep reading the raw ones.

    python bench/centre_lab.py /tmp/fusion.pkl [part of variant names]

Prints, per variant, the figures under the best single ranker (meaning alone, raw or
centred, whichever is higher) and per set, path and kind R@1/R@5/MRR@10 (fusion_lab's
format).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import fusion_lab as fl  # noqa: E402
import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402

from portal.search import semantic  # noqa: E402


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def transform(data: dict, beta: float, mean_of: str, drop: int):
    """The map x -> unit(x - beta * mean, minus its top `drop` principal directions)."""
    key = ("transform", beta, mean_of, drop)
    if key not in data:
        corpus = data["vectors"] if mean_of == "chunks" else np.vstack(
            [data["vectors"], data["title_vectors"], data["lead_vectors"]])
        mean = corpus.astype(np.float64).mean(axis=0)
        basis = None
        if drop:
            _u, _s, vt = np.linalg.svd(corpus - mean, full_matrices=False)
            basis = vt[:drop]

        def apply(x: np.ndarray) -> np.ndarray:
            y = x - beta * mean
            if basis is not None:
                y = y - (y @ basis.T) @ basis
            return _unit(y)
        data[key] = (apply, apply(data["vectors"]), apply(data["title_vectors"]),
                     apply(data["lead_vectors"]))
    return data[key]


def centred(beta: float, mean_of: str = "chunks", drop: int = 0, title_weight: float | None = None,
            raw_title: bool = False):
    """dense(c): the centred best chunk per article, lifted toward its centred title or lead."""
    weight = semantic.TITLE_WEIGHT if title_weight is None else title_weight

    def dense(c):
        key = ("centred", beta, mean_of, drop, weight, raw_title)
        if key not in c:
            data = c["_data"]
            apply, chunks, titles, leads = transform(data, beta, mean_of, drop)
            q = apply(c["vector"][None, :])[0]
            best = np.full(len(data["articles"]), -1.0)
            np.maximum.at(best, data["row_article_index"], chunks @ q)
            if raw_title:
                title = best + (c["title"] - c["cosine"])
            else:
                title = best.copy()
                at = np.searchsorted(data["articles"], data["title_ids"])
                title[at] = np.maximum(titles @ q, leads @ q)
            c[key] = best + weight * np.maximum(title - best, 0.0)
        return c[key]
    return dense


def centred_alone(beta, mean_of="chunks", drop=0):
    dense = centred(beta, mean_of, drop, title_weight=0.0)
    return fl.bonus(0.0, 1.0, dense)


def now():
    return fl.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                    lambda c: c["cosine"] + semantic.TITLE_WEIGHT
                    * np.maximum(c["title"] - c["cosine"], 0.0), title_floor=semantic.TITLE_FLOOR)


VARIANTS = {
    "now": now(),
    **{f"centred b={b} mean={m} drop={d} alpha={a}": fl.bonus(
        a, semantic.KEYWORD_SCORE_POWER, centred(b, m, d), title_floor=semantic.TITLE_FLOOR)
       for b in (0.5, 1.0) for m in ("chunks", "all") for d in (0, 1, 3)
       for a in (0.08, 0.12, 0.16, 0.2)},
}


def main(path: str, only: str = "") -> None:
    with open(path, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab wrote)
    fl._prepare(lab)
    singles = [fl.VARIANTS["meaning alone"]]
    results = {}
    for title, variant in VARIANTS.items():
        if only not in title and title != "now":
            continue
        extra = []
        if title.startswith("centred"):
            b, m, d = (title.split()[i].split("=")[1] for i in (1, 2, 3))
            extra = [centred_alone(float(b), m, int(d))]
        below, lines, alls = 0, [], []
        for name, data in lab.items():
            for label in fl.PATHS:
                result = fl.evaluate(data, label, variant)
                base = [fl.evaluate(data, label, s) for s in singles + extra]
                alls.append((name, label, *result["all"], result[sq.UNRELATED][0]))
                below += sum(result[k][m] < max(b[k][m] for b in base) - 1e-9
                             for k in sq.KINDS for m in (0, 1))
                cells = " ".join(f"{k[:5]} {result[k][0]:.3f}/{result[k][1]:.3f}/"
                                 f"{result[k][2]:.3f}" for k in (*sq.KINDS, "all"))
                lines.append(f"  {name:<6} {label:<7} {cells} unrel "
                             f"{result[sq.UNRELATED][0]:.3f}")
        results[title] = (below, alls)
        summary = " ".join(f"{n[:3]}/{lb[:3]} {r1:.3f}/{r5:.3f}/{mrr:.3f}"
                           for n, lb, r1, r5, mrr, _u in alls)
        print(f"{title}: under {below}; {summary}")
        if "-v" in sys.argv:
            print("\n".join(lines))


if __name__ == "__main__":
    main(*[a for a in sys.argv[1:] if a != "-v"])
