"""Private files are private on the machine too (issue 11, item 7).

The instance folder, the SQLite database with its -wal/-shm files, instance/mail (live reset
links) and the uploads were created world-readable (0644/0755). The process umask is now 077
from the start, and modes left by older versions are fixed at start with a log line.
"""

import io
import logging
import shutil
import stat
from pathlib import Path

from portal import create_app
from portal.extensions import db


def make_app(instance: Path):
    return create_app({
        "TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": "test",
        "DATABASE_URL": f"sqlite:///{instance / 'portal.sqlite3'}", "SEMANTIC_SEARCH": False,
    })


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_what_the_portal_writes_is_for_its_own_user_only(app, customer_client, run_jobs):
    response = customer_client.post("/tickets/new", data={
        "subject": "Printer", "description": "It smokes.", "type": "question",
        "attachments": (io.BytesIO(b"log line\n"), "printer.log")})
    assert response.status_code == 303
    app.test_client().post("/auth/reset", data={"email": "casey@example.com"})
    run_jobs()  # a worker writes the development mail
    instance = Path(app.instance_path)
    for key in ("INDEX_DIR", "UPLOAD_DIR", "MAIL_DIR"):
        assert mode(Path(app.config[key])) == 0o700, key
    assert mode(instance) == 0o700
    database = instance / "portal.sqlite3"
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists():
            assert mode(path) == 0o600, path
    [upload] = Path(app.config["UPLOAD_DIR"]).iterdir()
    assert mode(upload) == 0o600
    emails = list(Path(app.config["MAIL_DIR"]).glob("*.eml"))
    assert emails and all(mode(e) == 0o600 for e in emails)


def test_loose_modes_from_older_versions_are_fixed_at_start(tmp_path, migrated_db, caplog):
    instance = tmp_path / "old-instance"
    (instance / "uploads").mkdir(parents=True)
    (instance / "mail").mkdir()
    shutil.copy(migrated_db, instance / "portal.sqlite3")
    old_upload = instance / "uploads" / "0123abcd"
    old_upload.write_bytes(b"an old attachment")
    reset_mail = instance / "mail" / "reset.eml"
    reset_mail.write_text("a live reset link")
    for path in (instance, instance / "uploads", instance / "mail"):
        path.chmod(0o755)
    for path in (instance / "portal.sqlite3", old_upload, reset_mail):
        path.chmod(0o644)

    caplog.set_level(logging.WARNING, logger="portal.config")
    app = make_app(instance)
    try:
        for path in (instance, instance / "uploads", instance / "mail"):
            assert mode(path) == 0o700, path
        for path in (instance / "portal.sqlite3", old_upload, reset_mail):
            assert mode(path) == 0o600, path
        assert "Made 6 files and folders of the instance private" in caplog.text
        caplog.clear()
        make_app(instance).extensions["portal_db_engine"].dispose()
        assert "private" not in caplog.text  # nothing left to fix: no log line
    finally:
        with app.app_context():
            db.engine.dispose()
