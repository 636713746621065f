"""Attachments: checked by content against an allow-list, stored outside static/ under random
names, and only ever downloaded as attachments.

Files are written under a temporary name (`<name>.part`, flushed to disk) and moved into
place when the database transaction that records them commits; a rollback deletes them. A
process killed in between leaves only a `.part` file, which `sweep_orphan_uploads` (run
daily) removes, or moves into place when its row did commit.

The file's name is only used for display. Its kind comes from its first bytes (the `filetype`
library) or, for plain text, from decoding it; a name that claims a different kind than the
content is refused, so a renamed executable or an HTML page called `.png` never gets in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import filetype
from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from portal.extensions import db
from portal.tickets.models import Attachment, Message, Ticket

logger = logging.getLogger(__name__)

PART = ".part"
_PENDING = "pending_uploads"  # Session.info: .part files waiting for the commit
_STORED_NAME = re.compile(r"[0-9a-f]{32}")


class AttachmentError(ValueError):
    """A user-facing reason an upload was refused."""


@dataclass(frozen=True)
class Kind:
    content_type: str
    extensions: tuple[str, ...]


# Detected MIME type -> what we store and which file name endings may claim it.
ALLOWED: dict[str, Kind] = {
    "image/png": Kind("image/png", ("png",)),
    "image/jpeg": Kind("image/jpeg", ("jpg", "jpeg")),
    "image/gif": Kind("image/gif", ("gif",)),
    "image/webp": Kind("image/webp", ("webp",)),
    "application/pdf": Kind("application/pdf", ("pdf",)),
    # Office files are zips inside; one without the telltale entries near the start is seen
    # as a plain zip, so those names may claim a zip too.
    "application/zip": Kind(
        "application/zip", ("zip", "docx", "xlsx", "pptx", "odt", "ods", "odp")
    ),
    "application/msword": Kind("application/msword", ("doc", "xls", "ppt", "msg")),
    "application/vnd.ms-excel": Kind("application/vnd.ms-excel", ("xls", "doc", "ppt")),
    "application/vnd.ms-powerpoint": Kind("application/vnd.ms-powerpoint", ("ppt", "doc", "xls")),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": Kind(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": Kind(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",)
    ),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": Kind(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",)
    ),
    "application/vnd.oasis.opendocument.text": Kind(
        "application/vnd.oasis.opendocument.text", ("odt",)
    ),
    "application/vnd.oasis.opendocument.spreadsheet": Kind(
        "application/vnd.oasis.opendocument.spreadsheet", ("ods",)
    ),
    "application/vnd.oasis.opendocument.presentation": Kind(
        "application/vnd.oasis.opendocument.presentation", ("odp",)
    ),
}
TEXT = Kind("text/plain", ("txt", "log", "csv", "md", "json", "xml", "yaml", "yml", "ini", ""))
ALLOWED_DESCRIPTION = "images (PNG, JPEG, GIF, WebP), PDF, plain text, office documents and zip"
# Markup a browser would render if it ever sniffed it; refused even as "text".
_MARKUP = re.compile(rb"<\s*(html|script|svg|iframe|body|head|meta|object|!doctype)", re.I)


def _limits() -> tuple[int, int]:
    cfg = current_app.config
    return int(cfg["MAX_UPLOAD_BYTES"]), int(cfg["MAX_ATTACHMENTS"])


def chosen_files(files: list[FileStorage] | None) -> list[FileStorage]:
    """The file inputs that actually carry a file (an empty input sends a nameless part)."""
    return [f for f in files or [] if isinstance(f, FileStorage) and f.filename]


def safe_filename(name: str) -> str:
    """A display/download name with no path, control or shell-special characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*;\'`$')
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 110] + dot + ext[:8]) if dot else name[:120]
    return name or "attachment"


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def _read_limited(upload: FileStorage, limit: int) -> bytes:
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise AttachmentError(
            f"“{safe_filename(upload.filename)}” is larger than {limit // (1024 * 1024)} MB."
        )
    return data


def _looks_like_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _MARKUP.search(data[:4096])


def detect(name: str, data: bytes) -> Kind:
    """The allowed kind of this content, or AttachmentError; the name must agree with it."""
    shown = safe_filename(name)
    if not data:
        raise AttachmentError(f"“{shown}” is empty.")
    guess = filetype.guess(data)
    if guess is not None:
        kind = ALLOWED.get(guess.mime)
    elif _looks_like_text(data):
        kind = TEXT
    else:
        kind = None
    if kind is None:
        raise AttachmentError(
            f"“{shown}” is not a file type we accept. You can attach {ALLOWED_DESCRIPTION}."
        )
    if _extension(shown) not in kind.extensions:
        raise AttachmentError(
            f"“{shown}” does not contain what its name says (its content is "
            f"{kind.content_type}). Rename it or attach the original file."
        )
    return kind


def check_uploads(files: list[FileStorage] | None) -> list[tuple[FileStorage, bytes, Kind]]:
    """Validate every chosen file before anything is stored: all or nothing."""
    chosen = chosen_files(files)
    max_bytes, max_count = _limits()
    if len(chosen) > max_count:
        raise AttachmentError(f"Attach at most {max_count} files at a time.")
    checked = []
    for upload in chosen:
        data = _read_limited(upload, max_bytes)
        checked.append((upload, data, detect(upload.filename, data)))
    return checked


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_uploads(files: list[FileStorage] | None, ticket: Ticket, message: Message) -> list[
    Attachment
]:
    """Check, store and record the uploaded files for `message`; raise AttachmentError.

    Nothing is written unless every file passes. Files written before a failure are removed, so
    a refused or rolled-back upload leaves nothing behind on disk.
    """
    checked = check_uploads(files)
    folder = upload_dir()
    saved: list[Attachment] = []
    written: list[Path] = []
    try:
        for upload, data, kind in checked:
            stored_name = secrets.token_hex(16)
            written.append(_write_pending(folder, stored_name, data))
            attachment = Attachment(
                ticket_id=ticket.id,
                message=message,
                filename=safe_filename(upload.filename),
                stored_name=stored_name,
                content_type=kind.content_type,
                size=len(data),
            )
            db.session.add(attachment)
            saved.append(attachment)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise AttachmentError("We could not store your files. Please try again.") from exc
    return saved


def _write_pending(folder: Path, stored_name: str, data: bytes) -> Path:
    """Write `data` as `<stored_name>.part`, on disk before the commit that records it."""
    part = folder / f"{stored_name}{PART}"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _await_commit(part)
    return part


def _await_commit(part: Path) -> None:
    session = db.session()
    session.info.setdefault(_PENDING, []).append(part)
    if not session.info.get("upload_listeners"):
        session.info["upload_listeners"] = True
        event.listen(session, "after_commit", _publish_pending)
        event.listen(session, "after_rollback", _discard_pending)


def _publish_pending(session: Session) -> None:
    """The rows are committed: move their files into place. (A released savepoint fires this
    too, while the outer transaction may still roll back: wait for that one.)"""
    if session.in_nested_transaction():
        return
    for part in session.info.pop(_PENDING, []):
        try:
            os.replace(part, part.with_suffix(""))
        except OSError:  # the daily sweep moves it once it sees the committed row
            logger.exception("Could not move upload %s into place", part.name)


def _discard_pending(session: Session) -> None:
    for part in session.info.pop(_PENDING, []):
        part.unlink(missing_ok=True)


def copy_attachments(attachments: list[Attachment], ticket: Ticket, message: Message) -> list[
    Attachment
]:
    """Copies of `attachments` (rows and stored files) on `message` of `ticket`, as a merge
    needs: each row owns its file, so deleting either ticket later never takes the other's.

    Raise AttachmentError, having removed every file it wrote, when the disk refuses.
    """
    folder = upload_dir()
    copies: list[Attachment] = []
    try:
        for original in attachments:
            stored_name = secrets.token_hex(16)
            _write_pending(folder, stored_name, (folder / original.stored_name).read_bytes())
            copy = Attachment(
                ticket_id=ticket.id, message=message, filename=original.filename,
                stored_name=stored_name, content_type=original.content_type,
                size=original.size, created_at=original.created_at,
            )
            db.session.add(copy)
            copies.append(copy)
    except OSError as exc:
        remove_files(copies)
        raise AttachmentError("We could not copy the ticket's files. Please try again.") from exc
    return copies


def remove_files(attachments: list[Attachment]) -> None:
    """Delete stored files whose database rows were rolled back."""
    for attachment in attachments:
        path = upload_dir() / attachment.stored_name
        path.unlink(missing_ok=True)
        Path(f"{path}{PART}").unlink(missing_ok=True)


def stored_path(attachment: Attachment) -> Path:
    return upload_dir() / attachment.stored_name



@dataclass(frozen=True)
class SweepResult:
    removed: int  # files with no database row, older than the grace period
    restored: int  # .part files whose row did commit, moved into place


def sweep_orphan_uploads(older_than: timedelta = timedelta(days=1), batch: int = 500
                         ) -> SweepResult:
    """Remove upload files no row refers to (left by a crash), once older than `older_than`;
    move into place `.part` files whose row committed before the process could do it.

    Run daily (a scheduled job, or `flask tickets sweep-uploads`). The grace period keeps it
    away from uploads whose request is still running.
    """
    folder = upload_dir()
    cutoff = time.time() - older_than.total_seconds()
    candidates: dict[str, Path] = {}
    for path in folder.iterdir():
        ours = _STORED_NAME.fullmatch(path.name.removesuffix(PART)) and path.is_file()
        if ours and (path.name.endswith(PART) or path.stat().st_mtime < cutoff):
            candidates[path.name] = path
    names = sorted({name.removesuffix(PART) for name in candidates})
    recorded: set[str] = set()
    for start in range(0, len(names), batch):
        chunk = names[start:start + batch]
        recorded.update(db.session.scalars(
            select(Attachment.stored_name).where(Attachment.stored_name.in_(chunk))))
    removed = restored = 0
    for name, path in candidates.items():
        stored_name = name.removesuffix(PART)
        if stored_name in recorded:
            if name.endswith(PART):
                with contextlib.suppress(FileNotFoundError):  # its request just did it
                    os.replace(path, folder / stored_name)
                    restored += 1
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    if removed or restored:
        logger.warning("Upload sweep: removed %d orphan files, moved %d into place",
                       removed, restored)
    return SweepResult(removed, restored)
