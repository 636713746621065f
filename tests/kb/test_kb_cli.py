import shutil

from portal.search import Audience, search_articles
from portal.search.index import store


def test_reindex_command_rebuilds_with_progress(app, kb):
    shutil.rmtree(app.config["INDEX_DIR"])
    store().reset()
    result = app.test_cli_runner().invoke(args=["kb", "reindex"])
    assert result.exit_code == 0, result.output
    assert "Indexing articles" in result.output and "Indexed 5 articles." in result.output
    assert search_articles("invoice", Audience.PUBLIC).total == 1


def test_process_queue_command(app, kb):
    result = app.test_cli_runner().invoke(args=["kb", "process-queue"])
    assert result.exit_code == 0 and "Applied 0 queued index changes." in result.output
