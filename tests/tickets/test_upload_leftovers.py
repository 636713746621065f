"""No leftovers after a crash (issue 11, item 8).

`kill -9` during filings with attachments left files in the upload folder with no database
row (one truncated). Uploads are now written as `.part` files and moved into place only when
the row commits; a daily sweep removes what a crash left.
"""

import io
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.tickets.attachments import PART, sweep_orphan_uploads
from portal.tickets.models import Attachment

ROOT = Path(__file__).resolve().parents[2]
LOG = (io.BytesIO(b"log line\n"), "printer.log")


def stored_files(app) -> set[str]:
    return {p.name for p in Path(app.config["UPLOAD_DIR"]).iterdir()}


def recorded() -> set[str]:
    db.session.commit()
    return set(db.session.scalars(select(Attachment.stored_name)))


def file_and_die(app, stage: str) -> None:
    """A real process files a request with an attachment and is killed (os._exit) at `stage`:
    after the files were written but before the commit, or right after the commit."""
    code = textwrap.dedent(f"""
        import io, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from werkzeug.datastructures import FileStorage
        from tests.conftest import make_app
        from portal.extensions import db
        from portal.tickets import services
        from portal.tickets.models import TicketType
        app = make_app(Path({app.instance_path!r}))
        with app.app_context():
            files = [FileStorage(io.BytesIO(b"x" * 100_000), filename="dump.log")]
            services.create_ticket(services.NewTicket(
                subject="Crash", description="Dies while filing.", type=TicketType.QUESTION,
                name="Vic", email="vic@example.com", files=files))
            if {stage!r} == "after-commit":
                db.session.commit()  # moves the file into place, then the process dies
            os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,  # noqa: S603
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr


def test_a_process_killed_before_the_commit_leaves_no_file_under_a_real_name(app):
    file_and_die(app, "before-commit")
    files = stored_files(app)
    assert not recorded()
    assert files and all(name.endswith(PART) for name in files), files
    # The daily sweep removes what is older than a day (here: anything).
    assert sweep_orphan_uploads(timedelta(0)).removed == len(files)
    assert not stored_files(app)


def test_a_committed_upload_is_in_place(app):
    file_and_die(app, "after-commit")
    assert stored_files(app) == recorded() != set()


def test_a_rolled_back_upload_leaves_nothing(app, customer_client, make_user):
    from werkzeug.datastructures import FileStorage

    from portal.tickets import services
    from portal.tickets.models import TicketType

    services.create_ticket(services.NewTicket(
        subject="Rolled back", description="Never kept.", type=TicketType.QUESTION,
        name="Vic", email="vic@example.com",
        files=[FileStorage(io.BytesIO(b"log line\n"), filename="a.log")]))
    assert any(n.endswith(PART) for n in stored_files(app))
    db.session.rollback()
    assert not stored_files(app)


def test_the_sweep_spares_young_files_and_finishes_committed_moves(app, customer_client):
    response = customer_client.post("/tickets/new", data={
        "subject": "Printer", "description": "It smokes.", "type": "question",
        "attachments": LOG})
    assert response.status_code == 303
    [kept] = recorded()
    folder = Path(app.config["UPLOAD_DIR"])
    # A crash between the commit and the move: the row exists, the file is still .part.
    os.replace(folder / kept, folder / f"{kept}{PART}")
    young_orphan = folder / ("a" * 32)
    young_orphan.write_bytes(b"a request still running")
    old_orphan = folder / ("b" * 32)
    old_orphan.write_bytes(b"left by a crash")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_orphan, (two_days_ago, two_days_ago))
    not_ours = folder / "README"
    not_ours.write_text("someone else's file")

    result = sweep_orphan_uploads()
    assert (result.removed, result.restored) == (1, 1)
    assert stored_files(app) == {kept, young_orphan.name, "README"}
    assert customer_client.get(f"/tickets/{response.headers['Location'].split('/')[2]}"
                               ).status_code == 200


def test_sweep_uploads_cli(app):
    folder = Path(app.config["UPLOAD_DIR"])
    orphan = folder / ("c" * 32)
    orphan.write_bytes(b"left by a crash")
    old = time.time() - 2 * 86400
    os.utime(orphan, (old, old))
    result = app.test_cli_runner().invoke(args=["tickets", "sweep-uploads"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 orphan upload, moved 0 into place." in result.output
    assert not orphan.exists()
