"""A surge's life: it ends when its rate is back at baseline, one spike written several ways
gives one surge, and the scan keeps the week's vectors in memory."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import delete, select

from portal.extensions import db
from portal.surges import detection, recent, services
from portal.surges.models import Surge, SurgeMember, TicketVector
from tests.surges.conftest import BOTH_DATABASES, SEMANTIC, fixture_rows


def members_of(surge: Surge) -> set[int]:
    return set(db.session.scalars(select(SurgeMember.ticket_id).where(
        SurgeMember.surge_id == surge.id)))


def checkout_rows(start: int, count: int) -> list[dict]:
    return [r for r in fixture_rows() if r["category"] == "checkout_502"][start:start + count]


@SEMANTIC
@BOTH_DATABASES
def test_a_surge_ends_when_its_rate_is_back_at_baseline(app, stream, file_ticket,
                                                        agent_client):
    now, spike = stream(spike=14)
    (surge,) = services.scan(now)
    db.session.commit()
    # While the spike is in its windows the surge stays open and keeps its tickets coming.
    late = file_ticket("Checkout fails with error 502", "Still a 502 when I pay.",
                       now + timedelta(minutes=20))
    db.session.commit()
    services.embed_pending()
    assert services.scan(now + timedelta(minutes=30)) == []
    db.session.commit()
    assert surge.status == "open" and late.id in members_of(surge)
    assert surge.surging_at == now + timedelta(minutes=30)

    # Hours later the topic is back at its usual rate: below the alert level for two hours,
    # the surge ends.
    services.scan(now + timedelta(hours=7))
    db.session.commit()
    assert surge.status == "ended" and surge.ended_at == now + timedelta(hours=7)
    assert surge.open_group_id is None
    count = surge.member_count

    # Its members stop growing...
    after = file_ticket("Checkout fails with error 502", "A 502 at the payment step.",
                        now + timedelta(hours=7, minutes=5))
    db.session.commit()
    services.embed_pending()
    db.session.expire_all()
    assert after.id not in members_of(surge) and surge.member_count == count

    # ...the strip and the surge page say it ended...
    strip = agent_client.get("/agent/surges/strip", headers={
        "HX-Request": "true", "HX-Target": "surges-strip"}).get_data(as_text=True)
    assert "ended" in strip and f"/agent/surges/{surge.id}" in strip
    page = agent_client.get(f"/agent/surges/{surge.id}").get_data(as_text=True)
    assert "Ended" in page and "takes no more tickets" in page

    # ...and a later spike of the same topic raises a new surge of its own tickets.
    second = now + timedelta(hours=9)
    fresh = [file_ticket(r["subject"], r["text"], second - timedelta(minutes=40 - 3 * i))
             for i, r in enumerate(checkout_rows(14, 14))]
    db.session.commit()
    while services.embed_pending(limit=50):
        pass
    (new,) = services.scan(second)
    db.session.commit()
    assert new.id != surge.id and new.status == "open"
    assert members_of(new) <= {t.id for t in fresh} | {after.id}
    assert not members_of(new) & {t.id for t in spike}


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def synthetic_week(file_ticket, now, rng, topics=range(10, 40), per_topic=8):
    """Tickets on 30 unrelated directions over the last week, with made-up vectors (the
    grouping and the scan are the real ones; only the encoder is left out)."""
    axes = np.eye(384, dtype=np.float32)
    for topic in topics:
        for minute in rng.uniform(6 * 60, 7 * 1440, per_topic):
            at = now - timedelta(minutes=float(minute))
            ticket = file_ticket(f"Topic {topic}", "Something usual.", at)
            services.add_to_group(ticket.id, at, unit(axes[topic] + rng.normal(0, 0.05, 384)))
    db.session.commit()
    return axes


@BOTH_DATABASES
def test_one_spike_written_two_ways_gives_one_surge(app, file_ticket):
    """Two phrasings of one incident form two neighbourhoods (their centres are 0.6 apart in
    cosine, too far for one); the second joins the first's surge instead of raising its
    own, and the tickets of both phrasings then join it."""
    rng = np.random.default_rng(3)
    now = services.utcnow().replace(microsecond=0) + timedelta(days=8)
    axes = synthetic_week(file_ticket, now, rng)
    ways = [unit(axes[1] + 0.8 * axes[2]), unit(axes[1] + 0.8 * axes[3])]
    assert 0.45 < float(ways[0] @ ways[1]) < detection.RADIUS
    spike = []
    for i in range(24):
        at = now - timedelta(minutes=60 - 2.5 * i)
        ticket = file_ticket("Checkout broken", "It fails.", at)
        services.add_to_group(ticket.id, at, unit(ways[i % 2] + rng.normal(0, 0.02, 384)))
        spike.append(ticket.id)
    db.session.commit()

    raised = services.scan(now)
    db.session.commit()
    assert len(raised) == 1 and len(db.session.scalars(select(Surge)).all()) == 1
    (surge,) = raised
    assert len(surge.centers()) == 2
    assert members_of(surge) == set(spike) and surge.member_count == len(spike)
    # Later tickets written either way join it.
    for way in ways:
        ticket = file_ticket("Checkout broken", "Again.", now + timedelta(minutes=1))
        services.add_to_group(ticket.id, now + timedelta(minutes=1), way)
        assert ticket.id in members_of(surge)
    assert services.scan(now + timedelta(minutes=2)) == []


@BOTH_DATABASES
def test_the_scan_keeps_the_weeks_vectors_and_reads_only_new_ones(app, file_ticket):
    rng = np.random.default_rng(4)
    now = services.utcnow().replace(microsecond=0)
    synthetic_week(file_ticket, now, rng, topics=range(10, 20), per_topic=5)
    held = recent.recent()
    services.scan(now)
    assert held.full_reads == 1 and len(held.window) == 50

    # A new ticket is appended, not read with the week again.
    ticket = file_ticket("Topic 12", "Something usual.", now + timedelta(minutes=1))
    services.add_to_group(ticket.id, now + timedelta(minutes=1),
                          unit(np.eye(384)[12] + rng.normal(0, 0.05, 384)))
    db.session.commit()
    services.scan(now + timedelta(minutes=1))
    assert held.full_reads == 1 and len(held.window) == 51
    assert ticket.id in held.window.ticket_ids

    # A quiet minute (nothing new, no surge open) does not even look at the vectors.
    services.scan(now + timedelta(hours=12))
    assert held.since == now + timedelta(minutes=1) - detection.HISTORY - max(detection.WINDOWS)

    # The week moves on: old rows leave the copy.
    later = now + timedelta(days=2)
    ticket = file_ticket("Topic 12", "Something usual.", later)
    services.add_to_group(ticket.id, later, unit(np.eye(384)[12] + rng.normal(0, 0.05, 384)))
    db.session.commit()
    services.scan(later)
    assert held.full_reads == 1 and len(held.window) < 52
    assert held.window.minutes.min() > recent.minutes_of(
        later - detection.HISTORY - max(detection.WINDOWS))

    # A row that goes away under the copy (a deleted ticket) makes it read the week again.
    gone = held.window.ticket_ids[0]
    db.session.execute(delete(TicketVector).where(TicketVector.ticket_id == int(gone)))
    db.session.commit()
    services.scan(later + timedelta(minutes=1))
    assert held.full_reads == 2 and gone not in held.window.ticket_ids
