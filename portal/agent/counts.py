"""Folding the queue's kept counts (QueueCount, QueueDueDay): the database adds a row of +1 or
-1 for every ticket change (migrations scale5_0002, scale5_0003), and this folds them into one
row per kind, so the sums the tabs read stay a few hundred rows.

The rows folded are exactly those deleted (DELETE … RETURNING): a row another transaction adds
meanwhile is either deleted and counted, or kept for the next fold, never lost.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, insert

from portal.extensions import db
from portal.tickets.models import QueueCount, QueueDueDay

KINDS = (
    (QueueCount, ("status", "assignee_id", "stale")),
    (QueueDueDay, ("day",)),
)


def compact() -> int:
    """Fold every kept count row into one per kind (rows summing to zero go); returns how
    many rows were folded. The caller commits."""
    folded = 0
    for model, keys in KINDS:
        columns = [model.__table__.c[key] for key in keys]
        sums: Counter = Counter()
        for *key, tickets in db.session.execute(
                delete(model).returning(*columns, model.tickets)):
            sums[tuple(key)] += tickets
            folded += 1
        rows = [dict(zip(keys, key, strict=True), tickets=n) for key, n in sums.items() if n]
        if rows:
            db.session.execute(insert(model), rows)
    return folded
