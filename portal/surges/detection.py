"""Grouping and surge detection as plain functions of vectors and counts.

Both the portal (tickets in the database, `portal.surges.services`) and the benchmark
(`bench/surges.py`, a simulated stream and clock) call these, so the figures measured are
those of the code that runs.

Grouping is leader clustering: a ticket joins the most similar recent group whose centroid
(the normalised mean of its members) is at least `SIMILARITY` in cosine, else it starts a
group. Detection counts a group's *neighbourhood*: every ticket within `NEIGHBOURHOOD` of the
centre of the group's recent tickets, whichever group it joined (one issue often splits over a
few groups, since leader clustering depends on arrival order), in recent windows and in the
week before; a surge's tickets are those within `MEMBERSHIP` of that centre. The count in
a window is compared with what the neighbourhood's share of last week's tickets predicts for
that window's total volume (so daily and weekly rhythms of the whole stream cancel out),
using a Poisson tail. Several windows catch fast and slow surges. An installation with less
than a week of history has no trustworthy shares: a group then needs more tickets, and its
expected share is floored at a cold-start prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

SIMILARITY = 0.65  # cosine to a group's centroid to join it
NEIGHBOURHOOD = 0.75  # cosine to a surge's centre to count towards its rate
MEMBERSHIP = 0.7  # cosine to a surge's centre to be one of its tickets
RECENTRE_MIN = 3  # recent neighbours needed to re-centre the neighbourhood on them
GROUP_IDLE = timedelta(days=7)  # a group with no ticket for this long takes no new ones
HISTORY = timedelta(days=7)  # the baseline: each group's share of this period's tickets
WINDOWS = (timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))
COLD_START = timedelta(days=7)  # less history than this: cold-start rule


@dataclass(frozen=True)
class Sensitivity:
    name: str
    max_p: float  # Poisson tail probability of the window count that raises a surge
    min_count: int  # tickets in the window, at least
    min_ratio: float  # window count over its expectation, at least
    cold_min_count: int  # tickets in the window during cold start
    cold_share: float  # expected share of a group during cold start, at least


SENSITIVITIES = {
    "normal": Sensitivity("normal", max_p=1e-6, min_count=6, min_ratio=3.0,
                          cold_min_count=10, cold_share=0.05),
    "sensitive": Sensitivity("sensitive", max_p=1e-5, min_count=5, min_ratio=3.0,
                             cold_min_count=8, cold_share=0.04),
}
DEFAULT_SENSITIVITY = "normal"


# --- grouping ----------------------------------------------------------------------------
def nearest(vector: np.ndarray, centroids: np.ndarray) -> tuple[int, float]:
    """Index and cosine of the closest centroid (rows unit length), or (-1, -1.0)."""
    if len(centroids) == 0:
        return -1, -1.0
    scores = centroids @ vector
    best = int(np.argmax(scores))
    return best, float(scores[best])


def assign(vector: np.ndarray, centroids: np.ndarray,
           similarity: float = SIMILARITY) -> int:
    """The row of the group `vector` joins, or -1 for a new group."""
    best, score = nearest(vector, centroids)
    return best if score >= similarity else -1


def centroid(vector_sum: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector_sum))
    return (vector_sum / norm).astype(np.float32) if norm > 0 else vector_sum


# --- detection ---------------------------------------------------------------------------
def poisson_tail(k: int, expected: float) -> float:
    """P(X >= k) for X ~ Poisson(expected)."""
    if k <= 0:
        return 1.0
    if expected <= 0:
        return 0.0
    term = math.exp(-expected)
    below = term
    for j in range(1, k):
        term *= expected / j
        below += term
    return max(0.0, 1.0 - below) if below < 0.999999 else _upper_sum(k, expected)


def _upper_sum(k: int, expected: float) -> float:
    """The tail summed from k upwards (precise when it is tiny)."""
    term = math.exp(-expected + k * math.log(expected) - math.lgamma(k + 1))
    total = 0.0
    j = k
    while term > total * 1e-12 and j < k + 1000:
        total += term
        j += 1
        term *= expected / j
    return total


@dataclass(frozen=True)
class WindowCounts:
    window: timedelta
    group: int  # the group's tickets in the window
    total: int  # all tickets in the window


@dataclass(frozen=True)
class Verdict:
    surge: bool
    window: timedelta | None
    count: int
    expected: float
    p_value: float


def neighbourhood_counts(center: np.ndarray, minutes: np.ndarray, vectors: np.ndarray,
                         now: float) -> tuple[list[WindowCounts], int, int, np.ndarray,
                                              np.ndarray]:
    """Counts for `judge` from recent tickets (`minutes`: arrival times in minutes, sorted;
    `vectors`: their unit embeddings), and which of them are the group's neighbours.

    Returns (window counts, neighbours in the baseline week, all tickets in the baseline
    week, neighbour mask, the centre used). The baseline week ends where the longest window
    begins.
    """
    if not len(vectors):
        return [WindowCounts(w, 0, 0) for w in WINDOWS], 0, 0, np.zeros(0, dtype=bool), center
    longest = max(WINDOWS).total_seconds() / 60
    history = HISTORY.total_seconds() / 60
    near = vectors @ center >= NEIGHBOURHOOD
    # Re-centre on what arrived lately: a surge is tighter than the group that caught it.
    lately = near & (minutes > now - longest) & (minutes <= now)
    if np.count_nonzero(lately) >= RECENTRE_MIN:
        center = centroid(vectors[lately].sum(axis=0))
    near = vectors @ center >= NEIGHBOURHOOD
    windows = []
    for window in WINDOWS:
        inside = (minutes > now - window.total_seconds() / 60) & (minutes <= now)
        windows.append(WindowCounts(window, int(np.count_nonzero(near & inside)),
                                    int(np.count_nonzero(inside))))
    base = (minutes > now - longest - history) & (minutes <= now - longest)
    return (windows, int(np.count_nonzero(near & base)), int(np.count_nonzero(base)), near,
            center)


def already_covered(recent_neighbours, open_members: set, share: float = 0.5) -> bool:
    """Are these recent neighbours mostly members of an open surge already? (One spike
    gives one surge, even when it spans a few groups.)"""
    recent_neighbours = list(recent_neighbours)
    if not recent_neighbours or not open_members:
        return False
    covered = sum(1 for t in recent_neighbours if t in open_members)
    return covered >= share * len(recent_neighbours)


def expected_share(group_history: int, total_history: int, history_span: timedelta,
                   sensitivity: Sensitivity) -> float:
    """The group's share of tickets to expect, from its share of the baseline period.

    One pseudo-ticket keeps a group never seen before from having a share of zero; during
    cold start the share is floored, since a few days say little about what is usual.
    """
    share = (group_history + 1) / (total_history + 1)
    if history_span < COLD_START:
        share = max(share, sensitivity.cold_share)
    return min(share, 1.0)


def judge(windows: list[WindowCounts], group_history: int, total_history: int,
          history_span: timedelta, sensitivity: Sensitivity) -> Verdict:
    """Is this group surging? The most significant of its windows decides."""
    share = expected_share(group_history, total_history, history_span, sensitivity)
    cold = history_span < COLD_START
    min_count = sensitivity.cold_min_count if cold else sensitivity.min_count
    best = Verdict(False, None, 0, 0.0, 1.0)
    for counts in windows:
        # The others in the window are the volume the share applies to.
        expected = max(counts.total - counts.group, 0) * share / max(1e-9, 1 - share)
        expected = max(expected, 1e-3)
        p_value = poisson_tail(counts.group, expected)
        surge = (counts.group >= min_count and counts.group >= sensitivity.min_ratio * expected
                 and p_value <= sensitivity.max_p)
        if surge and (not best.surge or p_value < best.p_value):
            best = Verdict(True, counts.window, counts.group, expected, p_value)
        elif not best.surge and p_value < best.p_value:
            best = Verdict(False, counts.window, counts.group, expected, p_value)
    return best


SURGE_IDLE = timedelta(hours=6)  # an open surge with no new member for this long ends
QUIET = timedelta(days=1)  # "not a surge" silences the group this long
