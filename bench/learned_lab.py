"""Learned suggestions simulated: what customers' confirmed deflections would do to the ranking.

A customer who types a question on the new-request form and clicks "This answered my
question" on a suggested article confirms a (question, article) pair. Replayed on the
fusion's captured inputs (`bench/fusion_lab.py capture`; the replay gives every question
the rank the portal gave it): each development set's answerable questions are split in two
halves (fixed seed); one half plays "customers confirmed question q answered article a"
(its question vector, its first answering article), the other is ranked with the learned
lift and compared with today's ranking of the same half; then the halves swap.

learned(a) is the highest cosine of the question with article a's learned questions. The
lift goes only to articles that are already candidates (keyword list, or nearest above
ITEM_FLOOR) and the floors read what they read today: a learned question reorders, it never
adds an article, so an unrelated question still gets nothing. Forms (`--form`):
"floor": weight * max(learned(a) - floor, 0) / (1 - floor); "nearest": the same for the
article of the nearest learned question only, when it is 0.05 closer than the next
article's; "above": weight * how much closer learned(a) is than the article's own best
chunk or title, when learned(a) >= floor.

    python bench/fusion_lab.py capture /tmp/fusion.pkl
    python bench/learned_lab.py /tmp/fusion.pkl        # the grid on Debian, then the portal's
    python bench/learned_lab.py /tmp/fusion.pkl --form floor --weight 0.1 --floor 0.6 \
        --seeds 11,29,47                                        # one setting, three halvings

Printed per setting: on each set, each split and path, R@1/R@5/MRR@10 per kind of the
ranked half, today, with the lift, meaning alone and keywords alone; figures (R@1/R@5 per
kind) under the best single ranker; questions that moved up, and down (split in those whose
article has a learned question and those whose article has none); unrelated questions
answered with nothing, today and with the lift. Then the same with 10% of the learned pairs
pointing to a wrong article: "random" (any other article: mischief) and "neighbour" (the
first article today's ranking gives it that does not answer it: a mis-click); and the
ceiling: the learned half asked again word for word, with and without 10% mis-clicks; and
near repeats: the learned half learned as another customer might retype it (REWORDINGS:
politer, a typo, wordier, a word shorter), asked as written.
Last line: RESULT, each figure the mean over seeds, splits and both paths.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import fusion_lab as lab  # noqa: E402
import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402

from portal.search import semantic  # noqa: E402

SEEDS = [11]
NOISE = 0.1
PATHS = ("suggest", "search")


def title_lifted(c: dict) -> np.ndarray:
    """Today's meaning score per article (best chunk, raised toward a closer title or lead)."""
    return c["cosine"] + semantic.TITLE_WEIGHT * np.maximum(c["title"] - c["cosine"], 0.0)


def today() -> lab.Callable:
    return lab.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER, title_lifted,
                     title_floor=semantic.TITLE_FLOOR)


FORMS = ("floor", "nearest", "above")


def learned(weight: float, floor: float, vectors: np.ndarray, where: np.ndarray,
            form: str = "floor", margin: float = 0.05) -> lab.Callable:
    """Today's ranking with the learned lift: `vectors` the learned questions' vectors,
    `where` the index (into the set's `articles`) of the article each one confirmed.

    learned(a): the highest cosine of the question with article a's learned questions.
    "floor": weight * max(learned(a) - floor, 0) / (1 - floor) (the brief's form);
    "nearest": the same, for the article of the nearest learned question only, and only
    when it is `margin` closer than the next article's;
    "above": weight * max(learned(a) - the closer of a's best chunk and title, 0), over
    `floor` only (a learned question as a title the customers wrote)."""
    def dense(c):
        base = title_lifted(c)
        if not len(vectors):
            return base
        best = np.full(len(base), -1.0)
        np.maximum.at(best, where, vectors @ c["vector"])
        if form == "above":
            own = np.maximum(c["cosine"], c["title"])
            return base + weight * np.where(best >= floor, np.maximum(best - own, 0.0), 0.0)
        lift = np.maximum(best - floor, 0.0) / (1.0 - floor)
        if form == "nearest":
            first, second = np.sort(best)[::-1][:2]
            if first - second < margin:
                return base
            lift[best < first] = 0.0
        return base + weight * lift
    return lab.bonus(semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER, dense,
                     title_floor=semantic.TITLE_FLOOR)


def keywords_alone(c: dict, _articles) -> list[int]:
    return [a for a, _s in c["keyword"]]


def rank_of(found: list[int], targets: set[int]) -> int | None:
    return next((i + 1 for i, a in enumerate(found[:10]) if a in targets), None)


def figures(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks) or 1
    return (sum(r == 1 for r in ranks) / n, sum(r is not None and r <= 5 for r in ranks) / n,
            sum(1 / r for r in ranks if r is not None) / n)


def halves(data: dict, seed: int) -> tuple[list[int], list[int]]:
    answerable = [i for i, row in enumerate(data["rows"]) if row["kind"] != sq.UNRELATED
                  and "vector" in row["suggest"]]
    random.Random(seed).shuffle(answerable)
    middle = len(answerable) // 2
    return sorted(answerable[:middle]), sorted(answerable[middle:])


def learned_pairs(data: dict, rows: list[int], noise: float, how: str, seed: int,
                  reworded: str | None = None) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """(question vectors, article index per vector, articles confirmed right) of the
    learned half: each question (or its `reworded` form) confirmed for its (first) article;
    a `noise` share of them for a wrong one instead."""
    articles = data["articles"]
    position = {int(a): i for i, a in enumerate(articles)}
    rng = random.Random(seed * 7919 + 1)
    wrong = set(rng.sample(rows, round(noise * len(rows)))) if noise else set()
    vectors, where, right = [], [], set()
    for i in rows:
        row = data["rows"][i]
        target = min(row["targets"])
        if i in wrong:
            if how == "random":
                target = rng.choice([int(a) for a in articles if int(a) not in row["targets"]])
            else:  # a mis-click: the first of today's list that does not answer it
                found = today()(row["suggest"], articles)
                target = next((a for a in found if a not in row["targets"]),
                              rng.choice([int(a) for a in articles
                                          if int(a) not in row["targets"]]))
        else:
            right.add(target)
        vectors.append(row["reworded"][reworded] if reworded else row["suggest"]["vector"])
        where.append(position[target])
    return (np.asarray(vectors, dtype=np.float32).reshape(-1, len(data["vectors"][0])),
            np.asarray(where, dtype=np.int64), right)


def run(lab_data: dict, weight: float, floor: float, noise: float = 0.0, how: str = "random",
        form: str = "floor", again: bool = False, reworded: str | None = None) -> dict:
    """Per (set, seed, split, path): today's and the lifted figures per kind on the ranked
    half, figures under the best single ranker, moves down, unrelated answered with nothing.
    `again`: the learned half is asked again, word for word (the ceiling: repeated
    questions), instead of the other half; with `reworded`, it was learned as reworded that
    way (`reword`), and is asked as written."""
    out = {}
    for name, data in lab_data.items():
        articles = data["articles"]
        unrelated = [row for row in data["rows"] if row["kind"] == sq.UNRELATED]
        for seed in SEEDS:
            first, second = halves(data, seed)
            for split, (taught, asked) in {"A->B": (first, second),
                                           "B->A": (second, first)}.items():
                asked = taught if again else asked
                vectors, where, right = learned_pairs(data, taught, noise, how, seed,
                                                      reworded)
                variant = learned(weight, floor, vectors, where, form)
                for path in PATHS:
                    ranks: dict = {}
                    down = {"learned": 0, "not learned": 0}
                    up = 0
                    for i in asked:
                        row = data["rows"][i]
                        c = row[path]
                        if "cosine" not in c:
                            continue
                        before = rank_of(today()(c, articles), row["targets"])
                        after = rank_of(variant(c, articles), row["targets"])
                        alone = rank_of(lab.VARIANTS["meaning alone"](c, articles),
                                        row["targets"])
                        words = rank_of(keywords_alone(c, articles), row["targets"])
                        for kind in (row["kind"], "all"):
                            for label, r in (("today", before), ("learned", after),
                                             ("meaning", alone), ("keywords", words)):
                                ranks.setdefault((label, kind), []).append(r)
                        b, a = before or 11, after or 11
                        if a > b:
                            down["learned" if row["targets"] & right else "not learned"] += 1
                        up += a < b
                    empty = [not variant(row[path], articles) if "cosine" in row[path]
                             else not row[path]["hits"] for row in unrelated]
                    empty_today = [not today()(row[path], articles) if "cosine" in row[path]
                                   else not row[path]["hits"] for row in unrelated]
                    result = {key: figures(r) for key, r in ranks.items()}
                    under = sum(
                        result["learned", k][m] < max(result["meaning", k][m],
                                                      result["keywords", k][m]) - 1e-9
                        for k in sq.KINDS for m in (0, 1) if ("learned", k) in result)
                    under_today = sum(
                        result["today", k][m] < max(result["meaning", k][m],
                                                    result["keywords", k][m]) - 1e-9
                        for k in sq.KINDS for m in (0, 1) if ("today", k) in result)
                    covered = sum(bool(data["rows"][i]["targets"] & right) for i in asked)
                    out[name, seed, split, path] = {
                        "figures": result, "down": down, "up": up, "under": under,
                        "under_today": under_today, "unrelated": sum(empty) / len(empty),
                        "unrelated_today": sum(empty_today) / len(empty_today),
                        "asked": len(asked), "covered": covered, "learned": len(taught)}
    return out


def _swapped_letters(text: str) -> str:
    """Two letters swapped in the middle of the longest word (a typo)."""
    words = text.split()
    at = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[at]
    if len(word) >= 5:
        middle = len(word) // 2
        words[at] = word[:middle - 1] + word[middle] + word[middle - 1] + word[middle + 1:]
    return " ".join(words)


# The same question as another customer might type it again: a near repeat.
REWORDINGS = {
    "polite": lambda text: f"hello, {text}, thank you",
    "typo": _swapped_letters,
    "wordier": lambda text: f"i need some help please: {text}. what should i do?",
    "first word dropped": lambda text: " ".join(text.split()[1:])
    if len(text.split()) >= 4 else text,
}


def reword(lab_data: dict) -> None:
    """row["reworded"][kind]: each answerable question's vector reworded each way, through
    the portal's query encoder; prints how close each rewording stays to the question."""
    from portal.search.embeddings import load_query_encoder

    encoder = load_query_encoder(None, "numpy")
    for name, data in lab_data.items():
        rows = [r for r in data["rows"] if r["kind"] != sq.UNRELATED and "vector" in r["suggest"]]
        for kind, change in REWORDINGS.items():
            vectors = encoder.encode([change(r["text"]) for r in rows])
            cosines = []
            for row, vector in zip(rows, vectors, strict=True):
                row.setdefault("reworded", {})[kind] = np.asarray(vector, dtype=np.float32)
                cosines.append(float(vector @ row["suggest"]["vector"]))
            cosines = np.asarray(cosines)
            print(f"{name}: reworded '{kind}' (\"{change('how do i reset my password')}\"): "
                  f"cosine with the question median {np.median(cosines):.3f}, 0.85 or more "
                  f"{np.mean(cosines >= 0.85):.2f}, 0.75 or more {np.mean(cosines >= 0.75):.2f}")


def neighbours(lab_data: dict) -> None:
    """Why a learned question is a weak signal for new wording: how often a question's
    closest other question is about its own article, and how close each is."""
    for name, data in lab_data.items():
        rows = [r for r in data["rows"] if r["kind"] != sq.UNRELATED and "vector" in r["suggest"]]
        vectors = np.asarray([r["suggest"]["vector"] for r in rows])
        targets = np.asarray([min(r["targets"]) for r in rows])
        cosines = vectors @ vectors.T
        np.fill_diagonal(cosines, -1.0)
        same, other = [], []
        for i, target in enumerate(targets):
            mine = targets == target
            if mine.sum() > 1:
                same.append(cosines[i][mine].max())
                other.append(cosines[i][~mine].max())
        same, other = np.asarray(same), np.asarray(other)
        print(f"{name}: {len(same)} of {len(rows)} questions share their article with another; "
              f"the closest other question is on the same article for {(same > other).sum()}; "
              f"closest same-article question median {np.median(same):.3f} "
              f"({(same >= 0.8).sum()} at 0.8 or more), closest other-article question "
              f"median {np.median(other):.3f} ({(other >= 0.8).sum()} at 0.8 or more)")


def summary(results: dict) -> str:
    parts = []
    for (name, _seed, split, path), r in results.items():
        t, lf = r["figures"]["today", "all"], r["figures"]["learned", "all"]
        parts.append(f"{name[:3]}/{split}/{path[:3]} {t[0]:.3f}/{t[1]:.3f}->"
                     f"{lf[0]:.3f}/{lf[1]:.3f}")
    down = sum(r["down"]["not learned"] for r in results.values())
    down_l = sum(r["down"]["learned"] for r in results.values())
    under = sum(r["under"] for r in results.values())
    under_today = sum(r["under_today"] for r in results.values())
    unrelated = min(r["unrelated"] for r in results.values())
    unrelated_today = min(r["unrelated_today"] for r in results.values())
    up = sum(r["up"] for r in results.values())
    return (f"under {under_today}->{under}; up {up}, down (not learned/learned) "
            f"{down}/{down_l}; unrelated-empty min {unrelated_today:.3f}->{unrelated:.3f}; "
            + " ".join(parts))


def detail(results: dict) -> None:
    for (name, seed, split, path), r in results.items():
        print(f"  {name:<6} seed {seed} {split} {path:<7} ranked {r['asked']} "
              f"(article learned for {r['covered']}), learned {r['learned']}; "
              f"up {r['up']}, down {r['down']['learned']} (article learned) / "
              f"{r['down']['not learned']} (not learned); under a single ranker "
              f"{r['under_today']} -> {r['under']}; unrelated-empty {r['unrelated_today']:.3f} -> "
              f"{r['unrelated']:.3f}")
        for label in ("today", "learned", "meaning", "keywords"):
            cells = " ".join(f"{k[:5]} {'/'.join(f'{x:.3f}' for x in r['figures'][label, k])}"
                             for k in (*sq.KINDS, "all") if (label, k) in r["figures"])
            print(f"    {label:<8} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", help="a file written by `fusion_lab.py capture`")
    parser.add_argument("--weight", type=float, help="one setting (default: the grid)")
    parser.add_argument("--floor", type=float)
    parser.add_argument("--sets", default="debian", help="the sets the grid is printed for")
    parser.add_argument("--noise", type=float, default=NOISE)
    parser.add_argument("--form", choices=FORMS, default="floor")
    parser.add_argument("--seeds", default="11", help="comma-separated: more halvings")
    args = parser.parse_args()
    SEEDS[:] = [int(seed) for seed in args.seeds.split(",")]
    with open(args.capture, "rb") as f:
        data = pickle.load(f)  # noqa: S301 (a file fusion_lab.py wrote)
    lab._prepare(data)
    neighbours(data)
    if args.weight is None:
        tuning = {k: v for k, v in data.items() if k in args.sets.split(",")}
        for form in FORMS:
            for weight in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
                for floor in (0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85):
                    print(f"{form} weight {weight} floor {floor}: "
                          f"{summary(run(tuning, weight, floor, form=form))}")
    weight = args.weight if args.weight is not None else semantic.LEARNED_WEIGHT
    floor = args.floor if args.floor is not None else semantic.LEARNED_FLOOR
    print(f"\n{args.form} weight {weight} floor {floor}, both sets:")
    clean = run(data, weight, floor, form=args.form)
    print(summary(clean))
    detail(clean)
    noisy = {}
    for how in ("random", "neighbour"):
        noisy[how] = run(data, weight, floor, args.noise, how, form=args.form)
        print(f"\n{args.noise:.0%} of the learned pairs wrong ({how}): {summary(noisy[how])}")
        detail(noisy[how])
    again = run(data, weight, floor, form=args.form, again=True)
    print(f"\nthe learned half asked again, word for word (the ceiling): {summary(again)}")
    again_noisy = run(data, weight, floor, args.noise, "neighbour", form=args.form, again=True)
    print(f"... with {args.noise:.0%} of them confirmed for a neighbour: {summary(again_noisy)}")
    reword(data)
    again_reworded = {}
    for kind in REWORDINGS:
        again_reworded[kind] = run(data, weight, floor, form=args.form, again=True,
                                   reworded=kind)
        print(f"the learned half learned reworded ({kind}), asked as written: "
              f"{summary(again_reworded[kind])}")

    def mean(results: dict, name: str, index: int, label: str = "learned") -> float:
        values = [r["figures"][label, "all"][index] for k, r in results.items() if k[0] == name]
        return sum(values) / len(values)

    fields = [f"form={args.form}", f"weight={weight}", f"floor={floor}"]
    for name in data:
        fields += [f"{name}_today_r1={mean(clean, name, 0, 'today'):.3f}",
                   f"{name}_learned_r1={mean(clean, name, 0):.3f}",
                   f"{name}_today_r5={mean(clean, name, 1, 'today'):.3f}",
                   f"{name}_learned_r5={mean(clean, name, 1):.3f}",
                   f"{name}_noisy_random_r1={mean(noisy['random'], name, 0):.3f}",
                   f"{name}_noisy_neighbour_r1={mean(noisy['neighbour'], name, 0):.3f}",
                   f"{name}_again_today_r1={mean(again, name, 0, 'today'):.3f}",
                   f"{name}_again_learned_r1={mean(again, name, 0):.3f}",
                   f"{name}_again_neighbour_r1={mean(again_noisy, name, 0):.3f}",
                   *(f"{name}_reworded_{kind.split()[0]}_r1={mean(result, name, 0):.3f}"
                     for kind, result in again_reworded.items())]
    fields += [f"not_learned_down={sum(r['down']['not learned'] for r in clean.values())}",
               f"under_single_ranker={sum(r['under'] for r in clean.values())}",
               f"unrelated_empty_min={min(r['unrelated'] for r in clean.values()):.3f}"]
    print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
