"""Fixtures for the two-host suite: a fresh database, two hosts started together, workers."""

from __future__ import annotations

import os

import pytest
from hosts import (
    POSTGRES_URL,
    Cluster,
    fresh_database,
    make_hosts,
    seed,
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not POSTGRES_URL:
        pytest.skip("CLUSTER TESTS SKIPPED: set PORTAL_TEST_POSTGRES_URL (CI starts a server)")
    database_url = fresh_database(POSTGRES_URL)
    root = tmp_path_factory.mktemp("cluster")
    hosts = make_hosts(root, database_url)
    a, b = hosts
    try:
        # Both hosts start on the empty database at the same moment.
        migrations = [a.migrate(), b.migrate()]
        codes = tuple(proc.wait(120) for proc in migrations)
        setup_app, accounts, sla_tickets = seed(database_url, root / "setup")
        for host in hosts:
            host.start_server()
            host.start_worker()
        for host in hosts:
            host.wait_until_serving()
        yield Cluster(a, b, database_url, codes, accounts, sla_tickets, setup_app)
    finally:
        for host in hosts:
            host.stop()
