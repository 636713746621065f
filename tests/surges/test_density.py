"""The detector's arithmetic on synthetic vectors (the end-to-end path is test_detection)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np

from portal.surges import detection

NORMAL = detection.SENSITIVITIES["normal"]
WEEK = 7 * 1440


def test_binomial_tail_matches_the_sum_of_its_terms():
    for k, n, q in [(0, 5, 0.3), (3, 10, 0.2), (9, 12, 0.02), (1, 1, 0.5), (6, 5, 0.5)]:
        direct = sum(math.comb(n, j) * q ** j * (1 - q) ** (n - j) for j in range(k, n + 1))
        assert math.isclose(detection.binomial_tail(k, n, q), direct, rel_tol=1e-9,
                            abs_tol=1e-300)


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def stream(rng, topics: int = 40, per_topic: int = 25, spikes=(), now: float = 2 * WEEK,
           noise: float = 0.08, spread: float = 60):
    """A week and a bit of tickets on `topics` directions, plus spikes: (topic, count) in the
    last `spread` minutes. Returns (minutes, vectors, topic of each), sorted by time."""
    axes = np.eye(64, dtype=np.float32)[:topics]
    minutes, topic_of = [], []
    for topic in range(topics):
        minutes += list(rng.uniform(now - WEEK - 360, now, per_topic))
        topic_of += [topic] * per_topic
    for topic, count in spikes:
        minutes += list(rng.uniform(now - spread, now, count))
        topic_of += [topic] * count
    order = np.argsort(minutes)
    minutes = np.asarray(minutes)[order]
    topic_of = np.asarray(topic_of)[order]
    noise = rng.normal(0, noise, (len(minutes), 64))
    return minutes, unit(axes[topic_of] + noise), topic_of


def test_one_spike_gives_one_alert_of_its_own_tickets():
    rng = np.random.default_rng(7)
    now = 2 * WEEK
    minutes, vectors, topics = stream(rng, spikes=[(3, 15)], now=now)
    fresh = np.flatnonzero(minutes > now - 30)
    alerts = detection.detect(minutes, vectors, now, fresh, timedelta(days=30), NORMAL)
    assert len(alerts) == 1
    members = topics[alerts[0].members]
    assert (members == 3).mean() >= 0.9 and (members == 3).sum() >= 12
    assert alerts[0].verdict.p_value <= NORMAL.max_p
    # An open surge there blocks a second one; so would "not a surge".
    assert detection.detect(minutes, vectors, now, fresh, timedelta(days=30), NORMAL,
                            blocked=alerts[0].centre[None, :]) == []


def test_two_spikes_give_two_alerts_and_a_quiet_stream_none():
    rng = np.random.default_rng(8)
    now = 2 * WEEK
    minutes, vectors, topics = stream(rng, spikes=[(3, 15), (11, 15)], now=now)
    fresh = np.flatnonzero(minutes > now - 30)
    alerts = detection.detect(minutes, vectors, now, fresh, timedelta(days=30), NORMAL)
    assert sorted(int(np.bincount(topics[a.members]).argmax()) for a in alerts) == [3, 11]

    minutes, vectors, _ = stream(np.random.default_rng(9), now=now)
    fresh = np.flatnonzero(minutes > now - 30)
    assert detection.detect(minutes, vectors, now, fresh, timedelta(days=30), NORMAL) == []


def test_a_spike_written_in_many_ways_is_found_around_its_earlier_tickets():
    """12 tickets in two hours, mostly less than `RADIUS` alike (cosine ~0.6 between two of
    them, ~0.77 to their mean): the latest tickets' neighbours are few, but centres seeded
    at the spike's earlier tickets hold 9 of the 12 at both levels. A quiet stream written
    the same way raises nothing."""
    now = 2 * WEEK
    minutes, vectors, topics = stream(np.random.default_rng(8), spikes=[(3, 12)], now=now,
                                      noise=0.1, spread=120)
    fresh = np.flatnonzero(minutes > now - 30)
    assert set(topics[fresh]) != {3}  # the fresh tickets are mostly others'
    for setting in detection.SENSITIVITIES.values():
        alerts = detection.detect(minutes, vectors, now, fresh, timedelta(days=30), setting)
        assert len(alerts) == 1
        members = topics[alerts[0].members]
        assert (members == 3).all() and len(members) >= 9

    minutes, vectors, _ = stream(np.random.default_rng(108), now=now, noise=0.1)
    fresh = np.flatnonzero(minutes > now - 30)
    for setting in detection.SENSITIVITIES.values():
        assert detection.detect(minutes, vectors, now, fresh, timedelta(days=30), setting) == []


def test_a_topic_that_is_always_busy_is_no_surge_at_its_usual_rate():
    """Judged against its own baseline: 15 in an hour is usual for a topic with ~2,500 a
    week."""
    windows = [(w, 15, 40) for w in detection.WINDOWS]
    busy = detection.judge(windows, near_base=2500, base=5000, history_span=timedelta(days=30),
                           sensitivity=NORMAL)
    rare = detection.judge(windows, near_base=5, base=5000, history_span=timedelta(days=30),
                           sensitivity=NORMAL)
    assert not busy.surge and rare.surge


def test_neighbourhoods_skipped_for_too_few_tickets_are_those_judged_no_surge():
    """The scan judges only neighbourhoods with `min_count` tickets in some window; judging
    every one of them gives the same surges."""
    rng = np.random.default_rng(10)
    now = 2 * WEEK
    minutes, vectors, _ = stream(rng, spikes=[(3, 15), (5, 6)], now=now)
    near = vectors[minutes > now - 360] @ vectors.T >= detection.NEIGHBOURHOOD
    for span in (timedelta(days=30), timedelta(days=2)):  # with a baseline, and cold
        for setting in detection.SENSITIVITIES.values():
            verdicts = detection._judge_all(near, minutes, now, span, setting, None)
            inside, in_base = detection._windows(minutes, now)
            every = [detection.judge(
                [(w, int(row[mask].sum()), int(mask.sum())) for w, mask in inside],
                int(row[in_base].sum()), int(in_base.sum()), span, setting) for row in near]
            assert [v.surge for v in verdicts] == [v.surge for v in every]
            assert any(v.surge for v in every) and not all(v.surge for v in every)


def test_overlapping_alerts_raise_the_most_significant_neighbourhood_alone():
    """A wider neighbourhood overlapping a spike's (sharing two of its tickets) also holds
    close intents' ordinary traffic: the spike is raised once, with the tight
    neighbourhood's tickets and verdict, not the union (where the spike's own tickets were
    a minority). A separate spike stays a separate alert."""
    vectors = unit(np.eye(16)[[0] * 8 + [1] * 8])
    verdict = detection.Verdict(True, detection.WINDOWS[1], 0, 0.5, 0.0)
    tight = detection.Alert(vectors[0], [0, 1, 2, 3, 4, 5], replace(verdict, p_value=1e-8))
    wide = detection.Alert(vectors[0], [4, 5, 8, 9, 10, 11, 12], replace(verdict, p_value=1e-6))
    other = detection.Alert(vectors[0], [14, 15, 13], replace(verdict, p_value=1e-7))
    alerts = detection.merge([wide, other, tight], vectors)
    assert [a.members for a in alerts] == [[0, 1, 2, 3, 4, 5], [13, 14, 15]]
    assert [a.verdict.p_value for a in alerts] == [1e-8, 1e-7]
    assert np.allclose(alerts[0].centre, vectors[0], atol=1e-6)
