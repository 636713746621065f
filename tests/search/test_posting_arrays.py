"""The posting-array operations (arrays.py) give exactly what the plain definitions give:
union and intersection by sorting, the best page by a full sort. Their faster forms (counting
into doc-sized arrays, binary search, sorting only the best) must not move a single hit or
score, ties and empty lists included."""

import random

import numpy as np
import pytest

from portal.search.arrays import _intersect, _union, top

DOCS = 5_000


def _postings(rng: random.Random, count: int):
    ids = np.asarray(sorted(rng.sample(range(DOCS), count)), dtype=np.int64)
    # Few distinct scores: many ties, the case an off-by-one in "the best N" would show.
    scores = np.asarray([rng.choice((0.5, 1.25, 2.0, 3.75)) for _ in ids], dtype=np.float64)
    return ids, scores


def _plain_union(parts):
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=scores, minlength=len(unique))


def _plain_intersect(parts):
    parts = sorted(parts, key=lambda p: len(p[0]))
    ids, scores = parts[0]
    for other_ids, other_scores in parts[1:]:
        ids, mine, theirs = np.intersect1d(ids, other_ids, assume_unique=True,
                                           return_indices=True)
        scores = scores[mine] + other_scores[theirs]
    return ids, scores


def _plain_top(postings, allowed, start, count):
    ids, scores = postings
    keep = allowed[ids]
    ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:start + count]
    return [(int(ids[i]), float(scores[i])) for i in order[start:]], len(ids)


@pytest.mark.parametrize("seed", range(20))
def test_union_and_intersection_match_the_plain_definitions(seed):
    rng = random.Random(seed)
    parts = [_postings(rng, rng.choice((0, 1, 7, 300, 2_500))) for _ in range(rng.randint(1, 4))]
    for ours, plain in ((_union(parts, DOCS), _plain_union(parts)),
                        (_intersect(parts), _plain_intersect(parts))):
        assert ours[0].tolist() == plain[0].tolist()
        assert ours[1].tolist() == plain[1].tolist()  # the same sums, to the last bit


@pytest.mark.parametrize("seed", range(20))
def test_a_page_of_the_best_is_the_full_sort_s_page(seed):
    rng = random.Random(seed)
    postings = _postings(rng, rng.choice((0, 5, 60, 3_000)))
    allowed = np.asarray([rng.random() < 0.8 for _ in range(DOCS)])
    for start, count in ((0, 10), (10, 10), (0, 50), (40, 10), (2_990, 20), (5_000, 10)):
        assert top(postings, allowed, start, count) == _plain_top(postings, allowed, start,
                                                                  count)


@pytest.mark.parametrize("sizes", [(1, 7, 3), (0, 40, 9), (300, 2_500, 700)])
def test_union_by_sorting_few_entries_and_by_counting_many_sums_alike(sizes):
    """Few entries are sorted, many counted into doc-sized arrays (arrays._few): both give the
    plain definition's documents and sums, to the last bit."""
    from portal.search.arrays import _few

    rng = random.Random(sum(sizes))
    parts = [_postings(rng, size) for size in sizes]
    assert _few(sum(sizes), DOCS) == (sizes[-1] < 100)  # both branches are exercised
    ours, plain = _union(parts, DOCS), _plain_union(parts)
    assert ours[0].tolist() == plain[0].tolist()
    assert ours[1].tolist() == plain[1].tolist()
