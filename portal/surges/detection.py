"""Grouping and surge detection as plain functions of vectors and counts.

Both the portal (tickets in the database, `portal.surges.services`) and the benchmark
(`bench/surges.py`, a simulated stream and clock) call these, so the figures measured are
those of the code that runs.

Grouping is leader clustering: a ticket joins the most similar recent group whose centroid
(the normalised mean of its members) is at least `SIMILARITY` in cosine, else it starts a
group. Groups are what agents browse and silence; detection does not depend on them, since
leader clustering splits one issue over a few groups depending on arrival order.

Detection looks for dense neighbourhoods among recent tickets: each recent ticket seeds a
centre (the mean of its recent neighbours within `RADIUS`), and the tickets within
`NEIGHBOURHOOD` of that centre are counted in recent windows and in the week before. A
conditional binomial test asks whether the window holds more of them than the window's share
of the total volume predicts (so daily and weekly rhythms cancel out, and a neighbourhood
seen rarely last week needs more tickets, not fewer). Several windows catch fast and slow
surges; overlapping alerting neighbourhoods are one spike, raised once with the tickets of
the most significant of them. An installation with less than a week of history has no
trustworthy baseline: it needs more tickets and assumes at least a floor of baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

SIMILARITY = 0.65  # cosine to a group's centroid to join it
RADIUS = 0.65  # cosine between two tickets that makes them neighbours (seeds a centre)
NEIGHBOURHOOD = 0.7  # cosine to a neighbourhood's centre to count towards its rate
MEMBERSHIP = 0.7  # cosine to a surge's centre to be one of its tickets
GROUP_IDLE = timedelta(days=7)  # a group with no ticket for this long takes no new ones
HISTORY = timedelta(days=7)  # the baseline: each group's share of this period's tickets
WINDOWS = (timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))
COLD_START = timedelta(days=7)  # less history than this: cold-start rule
COLD_BASE = 100  # baseline tickets assumed at least during cold start
SAME_SPIKE = 0.45  # cosine to an open surge's first centre: a new alert joins that surge


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
    "sensitive": Sensitivity("sensitive", max_p=4e-6, min_count=5, min_ratio=3.0,
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
def binomial_tail(k: int, n: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q), summed from k upwards (precise when tiny)."""
    if k <= 0:
        return 1.0
    if k > n or q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    log_q, log_r = math.log(q), math.log1p(-q)
    total = 0.0
    for j in range(k, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                        + j * log_q + (n - j) * log_r)
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, total)


@dataclass(frozen=True)
class Verdict:
    surge: bool
    window: timedelta | None
    count: int  # neighbours in the window
    expected: float  # what the baseline predicts for the window
    p_value: float


NO_SURGE = Verdict(False, None, 0, 0.0, 1.0)


def judge(counts: list[tuple[timedelta, int, int]], near_base: int, base: int,
          history_span: timedelta, sensitivity: Sensitivity) -> Verdict:
    """Does a neighbourhood stand out? `counts`: (window, neighbours in it, all tickets in
    it); `near_base`, `base`: the same over the baseline period before the windows.

    The test compares two rates without trusting either: given the neighbourhood's tickets in
    the window and in the baseline together, each falls in the window with probability
    (other tickets in the window) / (other tickets in window and baseline) if nothing changed
    (so the daily and weekly rhythm of the whole stream cancels out, and a thin baseline is
    no licence to alert). The most significant window decides; windows short of the
    minimum count or ratio are not tested (no surge whatever the test says).
    """
    cold = history_span < COLD_START
    min_count = sensitivity.cold_min_count if cold else sensitivity.min_count
    if cold:  # a few days say little about what is usual: assume at least a floor of it
        base = max(base, COLD_BASE)
        near_base = max(near_base, math.ceil(sensitivity.cold_share * base))
    best = NO_SURGE
    for window, near, total in counts:
        # Exposure is the other tickets' volume: the spike's own tickets must not raise
        # what the window is expected to hold.
        others, others_base = max(total - near, 0), max(base - near_base, 0)
        q = others / (others + others_base) if others + others_base else 1.0
        expected = near_base * others / others_base if others_base else 0.0
        if near < min_count or near < sensitivity.min_ratio * expected:
            continue  # no surge whatever the test says: spare it (the scan's main cost)
        p_value = binomial_tail(near, near + near_base, q)
        surge = p_value <= sensitivity.max_p
        if (surge, -p_value) > (best.surge, -best.p_value):
            best = Verdict(surge, window, near, expected, p_value)
    return best


@dataclass(frozen=True)
class Alert:
    """A dense neighbourhood: rows are indices into the arrays given to `detect`."""
    centre: np.ndarray
    members: list[int]
    verdict: Verdict


def _windows(minutes: np.ndarray, now: float) -> tuple[list, np.ndarray]:
    """(window, rows inside it) for each window, and the rows of the baseline before them."""
    longest = max(WINDOWS).total_seconds() / 60
    inside = [(window, (minutes > now - window.total_seconds() / 60) & (minutes <= now))
              for window in WINDOWS]
    in_base = (minutes > now - longest - HISTORY.total_seconds() / 60) & \
        (minutes <= now - longest)
    return inside, in_base


def _judge_all(near: np.ndarray, minutes: np.ndarray, now: float, history_span: timedelta,
               sensitivity: Sensitivity, claimed: np.ndarray | None) -> list[Verdict]:
    """A verdict for each row of `near` (which tickets are close to that neighbourhood).
    Tickets `claimed` by an ended surge count in the baseline but not in the windows: a
    new surge needs tickets of its own."""
    inside, in_base = _windows(minutes, now)
    base, near_base = int(np.count_nonzero(in_base)), near[:, in_base].sum(axis=1)
    window_near = near if claimed is None else near & ~claimed
    totals = [int(np.count_nonzero(mask)) for _, mask in inside]
    counts = [window_near[:, mask].sum(axis=1) for _, mask in inside]
    # Too few tickets in every window is never a surge: skip those rows' binomial tests
    # (most neighbourhoods: about 7% less CPU for the bench's replay).
    cold = history_span < COLD_START
    enough = np.max(counts, axis=0) >= (sensitivity.cold_min_count if cold
                                        else sensitivity.min_count)
    return [judge([(w, int(c[row]), t)
                   for (w, _), c, t in zip(inside, counts, totals, strict=True)],
                  int(near_base[row]), base, history_span, sensitivity)
            if enough[row] else NO_SURGE
            for row in range(len(near))]


def _centres(recent_vectors: np.ndarray) -> np.ndarray:
    """Each recent ticket's neighbourhood centre: the mean of its recent neighbours (within
    `RADIUS`, itself included); tickets with the same neighbours give one centre."""
    near = recent_vectors @ recent_vectors.T >= RADIUS
    packed = np.packbits(near, axis=1)
    _, first = np.unique(packed.view(f"V{packed.shape[1]}").ravel(), return_index=True)
    sums = near[np.sort(first)].astype(np.float32) @ recent_vectors
    return (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)


def detect(minutes: np.ndarray, vectors: np.ndarray, now: float, fresh: np.ndarray,
           history_span: timedelta, sensitivity: Sensitivity,
           blocked: np.ndarray | None = None,
           claimed: np.ndarray | None = None) -> list[Alert]:
    """Dense neighbourhoods among recent tickets, merged so one spike gives one alert.

    `minutes` (sorted arrival times in minutes) and `vectors` (unit rows) hold the tickets of
    the baseline period and the windows up to `now`; `fresh` the rows that arrived lately
    (none: nothing to do). Every recent ticket seeds a neighbourhood: the centre of its
    recent neighbours (within `RADIUS`), and the tickets within `NEIGHBOURHOOD` of that
    centre are counted in each window and in the baseline. (Not only the neighbourhoods a
    fresh ticket entered: a centre moves whenever a recent ticket arrives or ages out, so a
    spike's best-placed neighbourhood can form around tickets that came earlier.)
    Neighbourhoods whose centre is within `SIMILARITY` of a `blocked` centre (open or
    silenced surges) are left alone; `claimed` (a mask of rows) are the tickets of ended
    surges.
    """
    longest = max(WINDOWS).total_seconds() / 60
    recent = np.flatnonzero((minutes > now - longest) & (minutes <= now))
    if not len(recent) or not len(fresh):
        return []
    centres = _centres(vectors[recent])
    if blocked is not None and len(blocked):
        centres = centres[(centres @ blocked.T).max(axis=1) < SIMILARITY]
    # Only neighbourhoods with enough tickets in some window can surge: the week's tickets
    # are compared with those centres alone (most centres fall short).
    countable = recent if claimed is None else recent[~claimed[recent]]
    near_recent = centres @ vectors[countable].T >= NEIGHBOURHOOD
    cold = history_span < COLD_START
    least = sensitivity.cold_min_count if cold else sensitivity.min_count
    enough = np.zeros(len(centres), dtype=bool)
    for window in WINDOWS:
        in_window = minutes[countable] > now - window.total_seconds() / 60
        enough |= near_recent[:, in_window].sum(axis=1) >= least
    centres = centres[enough]
    if not len(centres):
        return []
    verdicts = _judge_all(centres @ vectors.T >= NEIGHBOURHOOD, minutes, now, history_span,
                          sensitivity, claimed)
    inside = dict(_windows(minutes, now)[0])
    alerts = []
    for centre, verdict in zip(centres, verdicts, strict=True):
        if verdict.surge:
            mask = inside[verdict.window]
            if claimed is not None:
                mask = mask & ~claimed
            members = np.flatnonzero(mask & (vectors @ centre >= MEMBERSHIP))
            alerts.append(Alert(centre, [int(i) for i in members], verdict))
    return merge(alerts, vectors)


def surging(centres: np.ndarray, minutes: np.ndarray, vectors: np.ndarray, now: float,
            history_span: timedelta, sensitivity: Sensitivity,
            claimed: np.ndarray | None = None) -> bool:
    """Is an open surge still at its alert level: would its neighbourhood (the tickets
    within `NEIGHBOURHOOD` of any of its centres) raise a surge now? Below it for
    `END_AFTER`, the surge ends."""
    near = (np.atleast_2d(centres) @ vectors.T >= NEIGHBOURHOOD).any(axis=0)
    return _judge_all(near[None, :], minutes, now, history_span, sensitivity,
                      claimed)[0].surge


def same_spike(centre: np.ndarray, first_centre: np.ndarray, members, open_members: set) -> bool:
    """Is this alert another neighbourhood of an open surge's spike? One intent is often
    written in ways far enough apart to form two neighbourhoods, arriving together: close
    to the surge's first centre (not to centres merged later, so a surge cannot creep from
    topic to topic), or sharing tickets with it."""
    return float(centre @ first_centre) >= SAME_SPIKE or any(m in open_members for m in members)


def already_covered(members, open_members: set, share: float = 0.5) -> bool:
    """Are these tickets mostly members of an open surge already? (One spike gives one
    surge, even when its centre drifts away from the open surge's.)"""
    members = list(members)
    if not members or not open_members:
        return False
    return sum(1 for t in members if t in open_members) >= share * len(members)


def merge(alerts: list[Alert], vectors: np.ndarray) -> list[Alert]:
    """One alert per spike: alerts sharing members are one spike, raised once with the
    members and verdict of its most significant neighbourhood. (A wider neighbourhood
    overlapping it also takes in close intents' ordinary traffic: the union of members let
    those in, and could leave the spike's own tickets a minority of its surge. Later tickets
    and alerts of the same spike still join the open surge.)"""
    merged: list[tuple[set[int], Alert]] = []
    for alert in sorted(alerts, key=lambda a: a.verdict.p_value):
        members = set(alert.members)
        joined = [m for m in merged if m[0] & members]
        for m in joined:
            merged.remove(m)
            members |= m[0]
        best = min([alert] + [m[1] for m in joined], key=lambda a: a.verdict.p_value)
        merged.append((members, best))
    out = []
    for _, best in sorted(merged, key=lambda m: m[1].verdict.p_value):
        rows = sorted(best.members)
        out.append(Alert(centroid(vectors[rows].sum(axis=0)), rows, best.verdict))
    return out


END_AFTER = timedelta(hours=2)  # an open surge below its alert level this long ends
QUIET = timedelta(days=1)  # "not a surge" silences the group this long
