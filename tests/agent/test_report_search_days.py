"""The search counts the database keeps per day and text (migration scale5_0001) against the
same figures counted from search_log, after every kind of change, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, select, update

from portal.agent.reports import ReportFilters, build_report
from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import SearchLog
from portal.kb.services import log_search


def _counted(f: ReportFilters) -> tuple[int, list[tuple[str, int]]]:
    """The period's searches and top texts with no result, counted from the log itself."""
    period = (SearchLog.created_at >= f.start_at, SearchLog.created_at < f.end_at)
    searches = db.session.scalar(select(func.count()).where(*period))
    no_results = db.session.execute(
        select(SearchLog.normalized, func.count())
        .where(*period, SearchLog.result_count == 0)
        .group_by(SearchLog.normalized)
        .order_by(func.count().desc(), SearchLog.normalized)
        .limit(10)).all()
    return searches, [tuple(row) for row in no_results]


def _check_every_change(now):
    f = ReportFilters.from_args({}, today=now.date())[0]

    def kept_equals_counted(searches: int) -> None:
        report = build_report(f, now=now)
        assert (report.searches, report.no_result_searches) == _counted(f)
        assert report.searches == searches  # the direct count saw the expected rows too

    def logged(query: str, results: int, days_ago: int = 0) -> int:
        log_id = log_search(query, results, "search")
        if days_ago:
            db.session.execute(update(SearchLog).where(SearchLog.id == log_id)
                               .values(created_at=now - timedelta(days=days_ago)))
        return log_id

    first = logged("Refund", 0)
    logged("refund ", 0, days_ago=2)
    logged("VPN", 0, days_ago=3)
    logged("password", 4)
    logged("old", 0, days_ago=45)  # before the 30-day period
    db.session.commit()
    kept_equals_counted(4)
    assert _counted(f)[1] == [("refund", 2), ("vpn", 1)]

    # Several rows in one statement; a search that now finds something; a moved search; a
    # changed text.
    db.session.execute(insert(SearchLog), [
        {"query": "vpn", "normalized": "vpn", "result_count": 0, "source": "instant",
         "created_at": now - timedelta(hours=h)} for h in (1, 2, 30)])
    db.session.commit()
    kept_equals_counted(7)
    db.session.execute(update(SearchLog).where(SearchLog.id == first).values(result_count=3))
    db.session.commit()
    kept_equals_counted(7)
    db.session.execute(update(SearchLog).where(SearchLog.normalized == "old")
                       .values(created_at=now - timedelta(days=1)))
    db.session.commit()
    kept_equals_counted(8)
    db.session.execute(update(SearchLog).where(SearchLog.normalized == "password")
                       .values(normalized="passwd", result_count=0))
    db.session.commit()
    kept_equals_counted(8)

    # Deleted one by one and all at once.
    db.session.execute(delete(SearchLog).where(SearchLog.id == first))
    db.session.commit()
    kept_equals_counted(7)
    db.session.execute(delete(SearchLog).where(SearchLog.normalized == "vpn"))
    db.session.commit()
    kept_equals_counted(3)
    assert _counted(f)[1] == [("old", 1), ("passwd", 1), ("refund", 1)]


def test_search_day_counts_stay_exact_through_every_change(app):
    with app.app_context():
        _check_every_change(utcnow())


def test_search_day_counts_stay_exact_through_every_change_on_postgres(pg_app):
    with pg_app.app_context():
        _check_every_change(utcnow())
