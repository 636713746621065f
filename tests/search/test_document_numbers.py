"""An article's document number, read from the id's entry in a segment's term table, is the
one Whoosh's `document_number` gives: after updates (the old document deleted, in the same
segment or an older one), deletions and merges."""

from __future__ import annotations

from whoosh import index

from portal.search.ranking import _live_docnum
from portal.search.schema import build_schema


def _add(writer, article_id: int, title: str) -> None:
    writer.update_document(id=str(article_id), title=title, body=title, status="published",
                           visibility="public", category_id=1)


def _same_as_whoosh(ix, ids) -> None:
    with ix.searcher() as searcher:
        reader = searcher.reader()
        for article_id in ids:
            assert _live_docnum(reader, str(article_id)) == \
                searcher.document_number(id=str(article_id)), article_id


def test_document_numbers_follow_updates_deletes_and_merges(tmp_path):
    ix = index.create_in(str(tmp_path), build_schema())
    with ix.writer() as writer:
        for article_id in range(1, 7):
            _add(writer, article_id, f"Article {article_id}")
        _add(writer, 4, "Article 4, edited before the commit")  # twice in one segment
    with ix.writer() as writer:  # a second segment: 2 is re-indexed, 3 removed
        _add(writer, 2, "Article 2, edited")
        writer.delete_by_term("id", "3")
        _add(writer, 7, "Article 7")
    with ix.searcher() as searcher:
        assert len(searcher.reader().leaf_readers()) == 2
    ids = range(0, 9)
    _same_as_whoosh(ix, ids)
    with ix.searcher() as searcher:
        assert searcher.document_number(id="3") is None
        assert searcher.stored_fields(searcher.document_number(id="2"))["title"] == \
            "Article 2, edited"
    ix.writer().commit(optimize=True)  # one segment again, deleted documents gone
    _same_as_whoosh(ix, ids)
