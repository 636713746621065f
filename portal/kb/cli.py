"""`flask --app app kb reindex|process-queue`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

kb_cli = AppGroup("kb", help="Knowledge base and its search index.")


@kb_cli.command("reindex")
def reindex() -> None:
    """Rebuild the search index from the database (the database is the source of truth)."""
    from portal.search import reindex_all

    with click.progressbar(length=1, label="Indexing articles", show_pos=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        count = reindex_all(progress=progress)
    click.echo(f"Indexed {count} articles.")
    _rebuild_embeddings()


def _rebuild_embeddings() -> None:
    from portal.search import semantic

    if semantic.encoder() is None:
        click.echo(f"Embeddings skipped: {semantic.status()['reason']} Search is keyword-only.")
        return
    with click.progressbar(length=1, label="Embedding articles", show_pos=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        chunks = semantic.rebuild_embeddings(progress=progress)
    click.echo(f"Embedded {chunks} new or changed chunks.")


@kb_cli.command("process-queue")
def process_queue() -> None:
    """Apply index changes left queued (e.g. after the index was locked or the disk full)."""
    from portal.search.queue import process_all

    total = process_all()  # as the index job: the new segments' posting files follow
    click.echo(f"Applied {total} queued index changes.")
