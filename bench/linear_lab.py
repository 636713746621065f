"""A linear fusion learned on one development set and checked on the other (issue 15,
ninth round), replayed on a `fusion_lab.py capture`.

    python bench/linear_lab.py /tmp/fusion.pkl

Each candidate of a question (the keyword candidates and the meaning candidates from
ITEM_FLOOR, as the portal's fusion takes them) is described by the features the fusion
already reads; the weights are learned by pairwise logistic regression (the right article
against each other candidate of the same question, L2-regularised) on one set's suggestion
questions, scaled so that the chunk cosine weighs 1, and the ranking they give (behind the
portal's gate: floors, title floor, keyword coverage) is measured on both sets.
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

FEATURES = ("cosine", "title lift", "keyword bonus", "share", "relative keyword score",
            "title alone lift", "second chunk")


def features(c: dict, articles: np.ndarray, candidates: list[int]) -> np.ndarray:
    """One row per candidate article id."""
    position = {int(a): i for i, a in enumerate(articles)}
    keyword = dict(c["keyword"])
    top = c["keyword"][0][1] if c["keyword"] and c["keyword"][0][1] > 0 else 1.0
    rows = []
    for a in candidates:
        i = position[a]
        cos = c["cosine"][i]
        share = c["shares"].get(a, 0.0)
        relative = max(keyword[a] / top, 0.0) if a in keyword else 0.0
        rows.append((cos, max(c["title"][i] - cos, 0.0),
                     share * relative ** semantic.KEYWORD_SCORE_POWER, share, relative,
                     max(c["title_alone"][i] - cos, 0.0), max(c["second"][i], 0.0)))
    return np.asarray(rows)


def candidates_of(c: dict, articles: np.ndarray) -> list[int]:
    found = [a for a, _s in c["keyword"]]
    for i in np.argsort(-c["cosine"])[:semantic.CANDIDATES]:
        if c["cosine"][i] < semantic.ITEM_FLOOR:
            break
        if int(articles[i]) not in found:
            found.append(int(articles[i]))
    return found


def learn(data: dict, use: list[int], l2: float = 0.01, label: str = "suggest") -> np.ndarray:
    """Weights of the `use` features, the cosine's fixed at 1: score = cosine + w . rest.

    Fitted by the listwise softmax loss (the right article's probability among a question's
    candidates, at a learned sharpness), with an L2 penalty `l2` on w; Adam, full batch."""
    groups = []
    for row in data["rows"]:
        c = row[label]
        if row["kind"] == sq.UNRELATED or "cosine" not in c:
            continue
        found = candidates_of(c, data["articles"])
        right = np.array([a in row["targets"] for a in found])
        if right.any() and not right.all():
            groups.append((features(c, data["articles"], found)[:, use], right))
    params = np.zeros(len(use))  # [log sharpness, w_1, ...]
    params[0] = np.log(20.0)
    moment, second = np.zeros_like(params), np.zeros_like(params)
    for step in range(1, 1501):
        grad = np.zeros_like(params)
        sharp = np.exp(params[0])
        w = np.r_[1.0, params[1:]]
        for x, right in groups:
            base = x @ w
            z = sharp * base
            p = np.exp(z - z.max())
            p /= p.sum()
            q = right / right.sum()
            delta = p - q  # d loss / d z
            grad[0] += delta @ base * sharp
            grad[1:] += sharp * (delta @ x[:, 1:])
        grad /= len(groups)
        grad[1:] += l2 * params[1:]
        moment = 0.9 * moment + 0.1 * grad
        second = 0.999 * second + 0.001 * grad ** 2
        params -= 0.02 * (moment / (1 - 0.9 ** step)) / (np.sqrt(second / (1 - 0.999 ** step))
                                                          + 1e-8)
    return np.r_[1.0, params[1:]]


def variant(weights: np.ndarray, use: list[int]):
    def score(c, _values, _position):
        raise AssertionError  # replaced below

    def ranked(c: dict, articles: np.ndarray) -> list[int]:
        base = fl.gated(lambda c, v, p: {a: 0.0 for a, _s in c["keyword"]},
                        semantic.TITLE_FLOOR)(c, articles)
        best = float(c["cosine"].max())
        floor = semantic.CORRECTED_QUERY_FLOOR if c["corrected"] else semantic.QUERY_FLOOR
        if not base or best < floor:
            return base  # the gate's answer: nothing, or the keyword order
        if base == [a for a, _s in c["keyword"]] and not any(
                float(c["cosine"][i]) >= semantic.ITEM_FLOOR for i in range(len(articles))):
            return base
        found = candidates_of(c, articles)
        scores = features(c, articles, found)[:, use] @ weights
        return [found[i] for i in np.argsort(-scores, kind="stable")]
    return ranked


SETUPS = {
    "today's features": [0, 1, 2],
    "+ share, relative": [0, 1, 2, 3, 4],
    "+ title alone": [0, 1, 2, 5],
    "+ second chunk": [0, 1, 2, 6],
    "all": [0, 1, 2, 3, 4, 5, 6],
}


def main(path: str) -> None:
    with open(path, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab wrote)
    fl._prepare(lab)
    today = fl.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                     lambda c: c["cosine"] + semantic.TITLE_WEIGHT
                     * np.maximum(c["title"] - c["cosine"], 0.0),
                     title_floor=semantic.TITLE_FLOOR)
    runs = [("today", None, None, today)]
    for setup, use in SETUPS.items():
        for trained in lab:
            for l2 in (0.0, 0.1, 1.0):
                w = learn(lab[trained], use, l2)
                runs.append((f"{setup} on {trained} l2={l2}",
                             dict(zip([FEATURES[i] for i in use], w.round(3), strict=True)),
                             trained, variant(w, use)))
    alone = {(n, lb): fl.evaluate(d, lb, fl.VARIANTS["meaning alone"])
             for n, d in lab.items() for lb in fl.PATHS}
    for title, weights, _trained, ranked in runs:
        under, alls = 0, []
        for name, data in lab.items():
            for label in fl.PATHS:
                r = fl.evaluate(data, label, ranked)
                under += sum(r[k][m] < alone[name, label][k][m] - 1e-9
                             for k in sq.KINDS for m in (0, 1))
                alls.append(f"{name[:3]}/{label[:3]} {r['all'][0]:.3f}/{r['all'][1]:.3f}/"
                            f"{r['all'][2]:.3f} vague {r['vague'][0]:.3f}")
        print(f"{title}: under {under}; {' '.join(alls)}\n    weights {weights}")


if __name__ == "__main__":
    main(sys.argv[1])
