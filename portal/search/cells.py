"""Nearest chunk vectors without reading every vector: an inverted file of k-means cells.

At 100,000 articles the knowledge base holds ~320,000 chunk vectors (490 MB of float32): an
exact scan reads all of them for every query, ~110 ms of memory bandwidth here. Instead the
vectors are grouped into cells around centroids (spherical k-means: cosine, like the
ranking), the matrix file stores them cell by cell, and a query scores the centroids, then
only the vectors of its nearest cells, with the same float32 cosines as the exact scan.
Rows an audience may not see are dropped before ranking, as in the exact scan, and more
cells are read while fewer than the wanted number of visible articles were found.

Centroids are trained once and kept while the collection grows (up to RETRAIN_GROWTH
times the rows they were trained on): a publish only assigns its new vectors to their
nearest centroid, so rewriting the file after a change costs no training.
"""

from __future__ import annotations

import math

import numpy as np

CELLS_PER_SQRT = 3.5  # cells = 3.5 x sqrt(rows): ~2,000 cells of ~160 rows at 320,000 rows
SAMPLE_PER_CELL = 24  # training rows per cell (a sample: training on all rows buys nothing)
TRAIN_ITERATIONS = 8
RETRAIN_GROWTH = 2.0
_BATCH = 16_384  # rows assigned per matrix product (bounded memory)


def cell_count(rows: int) -> int:
    return max(1, min(rows, round(CELLS_PER_SQRT * math.sqrt(rows))))


def needs_training(rows: int, trained_rows: int) -> bool:
    return not trained_rows or rows > RETRAIN_GROWTH * trained_rows


def train(vectors: np.ndarray, cells: int, seed: int = 0) -> np.ndarray:
    """Unit-length centroids of `cells` cells of the (unit-length) rows of `vectors`.
    The same rows give the same centroids (fixed seed)."""
    rng = np.random.default_rng(seed)
    rows = len(vectors)
    picked = np.sort(rng.choice(rows, min(rows, cells * SAMPLE_PER_CELL), replace=False))
    sample = np.asarray(vectors[picked], dtype=np.float32)
    centroids = sample[rng.choice(len(sample), cells, replace=False)].copy()
    for _ in range(TRAIN_ITERATIONS):
        nearest = assign(sample, centroids)
        order = np.argsort(nearest, kind="stable")
        sizes = np.bincount(nearest, minlength=cells)
        filled = sizes > 0
        sums = np.zeros_like(centroids)
        sums[filled] = np.add.reduceat(sample[order], (np.cumsum(sizes) - sizes)[filled])
        empty = np.flatnonzero(~filled)  # restart an empty cell on a random row
        sums[empty] = sample[rng.choice(len(sample), len(empty))]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centroids.astype(np.float32)


def assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (highest cosine) of every row, in batches."""
    return np.concatenate([
        np.argmax(np.asarray(vectors[start:start + _BATCH]) @ centroids.T, axis=1)
        for start in range(0, len(vectors), _BATCH)] or [np.empty(0, dtype=np.int64)]
    ).astype(np.int32)


def layout(cells_of_rows: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(row order grouping the rows cell by cell, stable within a cell; each cell's start
    in that order, plus the end)."""
    order = np.argsort(cells_of_rows, kind="stable")
    offsets = np.searchsorted(cells_of_rows[order], np.arange(cells + 1))
    return order, offsets.astype(np.int64)


def probe(vectors: np.ndarray, centroids: np.ndarray, offsets: np.ndarray,
          query: np.ndarray, visible: np.ndarray, article_ids: np.ndarray, *,
          rows: int, articles: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosines) of the visible rows of the cells nearest to `query`, read until at
    least `rows` rows were read (a cost that does not grow with the collection), then twice
    as many cells again while they hold fewer than `articles` distinct visible articles."""
    ranked = np.argsort(-(centroids @ query))
    sizes = np.cumsum(offsets[ranked + 1] - offsets[ranked])
    found: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    done = 0
    want = int(np.searchsorted(sizes, rows)) + 1
    while done < len(ranked):
        for cell in ranked[done:done + want]:
            start, end = int(offsets[cell]), int(offsets[cell + 1])
            keep = np.flatnonzero(visible[start:end])
            if keep.size:
                found.append(keep + start)
                scores.append((vectors[start:end] @ query)[keep])
        done += want
        want = done
        if found and distinct(article_ids[np.concatenate(found)]) >= articles:
            break
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    return np.concatenate(found), np.concatenate(scores)


def distinct(values: np.ndarray) -> int:
    """How many different values: `np.unique(values).size`, by sorting. numpy 2's
    `np.unique` hashes instead, 3.5 times slower on the ~8,000 article ids of a probe
    (1.6 against 0.45 ms: a tenth of a search page's CPU at 100,000 articles)."""
    if not values.size:
        return 0
    ordered = np.sort(values)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
