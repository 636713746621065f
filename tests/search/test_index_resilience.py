"""The index stays true: locked, failing, deleted or killed index writes never lose a change."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select
from whoosh.filedb.filestore import FileStorage

from portal.extensions import db
from portal.kb.models import IndexQueue
from portal.search import Audience, process_index_queue, reindex_all, search_articles
from portal.search import queue as index_queue
from portal.search.index import store
from portal.search.schema import INDEX_NAME

ROOT = Path(__file__).resolve().parents[2]


def queued() -> int:
    db.session.commit()
    return db.session.scalar(select(func.count(IndexQueue.article_id)))


def titles(query, audience=Audience.PUBLIC):
    return [h.title for h in search_articles(query, audience).hits]


def start_python(app, code: str, **variables) -> subprocess.Popen:
    """Run code in another process against the same instance (database + index folder)."""
    prelude = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from tests.conftest import make_app
        app = make_app(Path({app.instance_path!r}))
    """) + "".join(f"{name} = {value!r}\n" for name, value in variables.items())
    return subprocess.Popen(  # noqa: S603 (our own test code, run with this interpreter)
        [sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_locked_index_keeps_the_change_queued_until_later(app, make_article, monkeypatch):
    monkeypatch.setattr(index_queue, "CLI_LOCK_TIMEOUT", 0.2)
    monkeypatch.setattr(index_queue, "REQUEST_LOCK_TIMEOUT", 0.2)
    lock = FileStorage(app.config["INDEX_DIR"]).lock(f"{INDEX_NAME}_WRITELOCK")
    store().index()
    assert lock.acquire()
    try:
        make_article("Locked out of billing", "billing lock", index=False)
        assert queued() == 1
        assert process_index_queue() == 0
        assert queued() == 1
    finally:
        lock.release()
    assert process_index_queue() == 1
    assert queued() == 0
    assert titles("billing lock") == ["Locked out of billing"]


def test_failed_commit_disk_full_leaves_queue_and_next_write_works(make_article, monkeypatch):
    make_article("First article", "alpha")

    def disk_full(self, name, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(FileStorage, "create_file", disk_full)
        make_article("Second article", "beta", index=False)
        assert process_index_queue() == 0
    assert queued() == 1
    assert process_index_queue() == 1
    assert titles("alpha") == ["First article"]
    assert titles("beta") == ["Second article"]


def test_deleted_index_folder_is_rebuilt_by_the_scheduled_catch_up(app, make_article,
                                                                   run_jobs):
    from portal.jobs.services import run_schedule_now

    make_article("Export to CSV", "csv export")
    shutil.rmtree(app.config["INDEX_DIR"])
    store().reset()
    # The catch-up finds an empty index, queues every article and applies them.
    run_schedule_now("search.catch-up")
    run_jobs()
    assert titles("csv") == ["Export to CSV"]
    assert queued() == 0


def test_reindex_rebuilds_from_the_database(make_article):
    make_article("Webhooks", "signature")
    shutil.rmtree(store().path)
    store().reset()
    assert reindex_all() == 1
    assert titles("signature") == ["Webhooks"]


def test_two_processes_writing_at_once(app, make_article):
    make_article("Seed", "seed")  # creates the index
    code = """
        from portal.extensions import db
        from portal.kb.models import KbSection
        from portal.kb.services import ArticleInput, create_article
        from portal.auth.models import User
        from portal.kb.models import ArticleStatus
        from sqlalchemy import select
        with app.app_context():
            section = db.session.scalars(select(KbSection)).first()
            author = db.session.scalars(select(User)).first()
            for n in range(15):
                create_article(ArticleInput(title=f"Parallel {TAG} {n}", body="parallel",
                                            section_id=section.id), author,
                               status=ArticleStatus.PUBLISHED)
                db.session.commit()
    """
    procs = [start_python(app, code, TAG=tag) for tag in ("one", "two")]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    process_index_queue()
    assert queued() == 0
    results = search_articles("parallel", Audience.PUBLIC, per_page=50)
    assert results.total == 30
    assert {h.title.split()[1] for h in results.hits} == {"one", "two"}


def test_process_killed_mid_write_leaves_nothing_a_restart_cannot_repair(app, make_article):
    make_article("Before the crash", "crash")
    proc = start_python(app, """
        import os
        from portal.search.index import store
        with app.app_context():
            writer = store().index().writer()
            for n in range(200):
                writer.add_document(id=f"9{n}", title="half written", body="ghost",
                                    status="published", visibility="public")
            writer.add_document(id="999", title="never committed", body="ghost")
            os._exit(9)  # die holding the lock, segment files half written
    """)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err
    store().reset()
    make_article("After the crash", "crash")
    assert sorted(titles("crash")) == ["After the crash", "Before the crash"]
    assert titles("ghost") == []
    assert queued() == 0
    assert os.listdir(app.config["INDEX_DIR"])


def test_one_index_job_per_transaction_and_none_after_a_rollback(app, make_article, run_jobs):
    from portal.jobs.models import Job
    from portal.kb.models import ArticleStatus
    from portal.kb.services import ArticleInput, create_article

    def index_jobs():
        db.session.commit()
        return db.session.scalar(select(func.count(Job.id)).where(Job.kind == "search.index",
                                                                  Job.status == "queued"))

    for title in ("Printer shows offline", "Printer jams"):
        create_article(ArticleInput(title=title, body="Restart it.",
                                    section_id=make_article.section.id),
                       None, status=ArticleStatus.PUBLISHED)
    with db.session.begin_nested():
        create_article(ArticleInput(title="Printer is slow", body="Clean it.",
                                    section_id=make_article.section.id),
                       None, status=ArticleStatus.PUBLISHED)
    assert index_jobs() == 1
    create_article(ArticleInput(title="Printer never written", body="Gone.",
                                section_id=make_article.section.id),
                   None, status=ArticleStatus.PUBLISHED)
    db.session.rollback()
    assert index_jobs() == 1
    run_jobs()
    assert queued() == 0
    assert sorted(titles("printer")) == ["Printer is slow", "Printer jams", "Printer shows offline"]
