"""What an agent's browsing leaves in a web worker: every view, sort and filter combination
is a statement of its own, compiled once and kept (~110 KB each for the queue's); the worker
keeps a bounded number of them."""

import itertools

from portal.extensions import db

VIEWS = ["unassigned", "mine", "open", "pending", "due", "stale", "solved", "all"]
SORTS = ["due", "priority", "updated", "created"]
FILTERS = [("priority", "urgent"), ("status", "open"), ("type", "question"), ("group", "1"),
           ("assignee", "0"), ("category", "1")]


def _queue_urls():
    for view, sort in itertools.product(VIEWS, SORTS):
        for combo in itertools.chain([()], itertools.combinations(FILTERS, 1),
                                     itertools.combinations(FILTERS, 2)):
            yield "/agent/?" + "&".join(
                [f"view={view}", f"sort={sort}"] + [f"{key}={value}" for key, value in combo])


def test_the_compiled_statements_of_many_queue_filters_stay_bounded(app, agent_client):
    size = app.config["SQL_COMPILED_CACHE_SIZE"]
    compiled = db.engine._compiled_cache
    assert compiled.capacity == size
    most = 0
    for url in itertools.islice(_queue_urls(), 300):
        assert agent_client.get(url).status_code == 200
        most = max(most, len(compiled))
    # SQLAlchemy prunes back to `size` past 1.5 times it: with its default of 500 these 300
    # pages kept ~300 statements (33 MB), each worker for good.
    assert size < most <= size * 1.5
    assert agent_client.get("/agent/").status_code == 200
