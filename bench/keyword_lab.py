"""Keyword ranking settings (BM25 k1 and b, field boosts) measured through the fusion
(issue 15, ninth round): each setting is a fresh `fusion_lab.py capture` with the setting
applied in this process, then the replay of today's fusion, gate included, and keywords
alone, on both sets.

    python bench/keyword_lab.py /tmp/keyword-lab [setting names...]   # ~1.5 min per setting idle

A setting is applied before the indexes are built (the scores are computed when postings
are read; the field boosts when the query is parsed), so each capture ranks as the portal
would with it. Captures are kept in the folder and reused.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import fusion_lab as fl  # noqa: E402
import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402

from portal.search import arrays, queryparse, schema, semantic  # noqa: E402

TODAY = {"k1": 1.2, "b": 0.75, "boosts": (4.0, 2.5, 1.5, 1.0)}
SETTINGS = {
    "today": TODAY,
    "k1 0.8": {**TODAY, "k1": 0.8},
    "k1 2.0": {**TODAY, "k1": 2.0},
    "b 0.4": {**TODAY, "b": 0.4},
    "b 0.9": {**TODAY, "b": 0.9},
    "title 2": {**TODAY, "boosts": (2.0, 2.5, 1.5, 1.0)},
    "title 8": {**TODAY, "boosts": (8.0, 2.5, 1.5, 1.0)},
    "flat boosts": {**TODAY, "boosts": (1.0, 1.0, 1.0, 1.0)},
}


def apply(setting: dict) -> None:
    arrays.K1 = setting["k1"]
    arrays.B["body"] = setting["b"]
    schema.FIELD_BOOSTS.update(zip(("title", "labels", "section", "body"), setting["boosts"],
                                   strict=True))
    queryparse._parsers.clear()  # parsers hold the boosts they were built with


def main(folder: str, names: list[str]) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    today = fl.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER,
                     lambda c: c["cosine"] + semantic.TITLE_WEIGHT
                     * np.maximum(c["title"] - c["cosine"], 0.0),
                     title_floor=semantic.TITLE_FLOOR)
    for name in names or SETTINGS:
        path = Path(folder) / f"{name.replace(' ', '_')}.pkl"
        if not path.exists():
            apply(SETTINGS[name])
            fl.capture(str(path))
        with open(path, "rb") as f:
            lab = pickle.load(f)  # noqa: S301 (a file this script wrote)
        fl._prepare(lab)
        for set_name, data in lab.items():
            for label in fl.PATHS:
                fused = fl.evaluate(data, label, today)
                alone = fl.evaluate(data, label, fl.VARIANTS["meaning alone"])
                keywords = _keywords_alone(data, label)
                cells = " ".join(f"{k[:5]} {fused[k][0]:.3f}/{fused[k][1]:.3f}"
                                 for k in (*sq.KINDS, "all"))
                under = sum(fused[k][m] < max(alone[k][m], keywords[k][m]) - 1e-9
                            for k in sq.KINDS for m in (0, 1))
                print(f"{name:<12} {set_name:<6} {label:<7} {cells} MRR "
                      f"{fused['all'][2]:.3f} keywords-alone {keywords['all'][0]:.3f}/"
                      f"{keywords['all'][1]:.3f} under {under}", flush=True)


def _keywords_alone(data: dict, label: str) -> dict:
    """Recall of the captured keyword candidates' own order (the keyword ranker's)."""
    ranks: dict[str, list] = {}
    for row in data["rows"]:
        if row["kind"] == sq.UNRELATED:
            continue
        found = [a for a, _s in row[label].get("keyword", [])][:10]
        rank = next((i + 1 for i, a in enumerate(found) if a in row["targets"]), None)
        for kind in (row["kind"], "all"):
            ranks.setdefault(kind, []).append(rank)
    return {k: (sum(x == 1 for x in r) / len(r), sum(x is not None and x <= 5 for x in r)
                / len(r)) for k, r in ranks.items()}


if __name__ == "__main__":
    os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    main(sys.argv[1], sys.argv[2:])
