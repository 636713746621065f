"""PostgreSQL search rows laid out for ranking: the body moves out of line, the vectors stay
inline (lz4 where they must be compressed), and instant results get a narrow table.

Ranking reads the weighted `tsvector` of every matching row. With the body inline (pglz
compressed), ranking a three-word OR query over 20,000 articles took 130-190 ms; with the body
out of line, 38-55 ms (the same query, interleaved on two copies of one database). The body is
read only for the snippets of the shown rows.

Instant results match the short vector (title, labels, headings, section) of up to thousands
of rows per keystroke; in `fts_articles` each such row is a wide row on its own page. In
`fts_short` (written with each `fts_articles` row, in the same statement) the rows are ~100
bytes: a prefix query that matched 896 rows took 1.7 ms there against 7.5 ms.

Revision ID: pgsearch_0001
Revises: surges_0001
Create Date: 2026-12-06 04:35:00
"""

from alembic import op

revision = 'pgsearch_0001'
down_revision = 'surges_0001'
branch_labels = None
depends_on = None

_LZ4 = ("SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
        " WHERE name = 'default_toast_compression'")


def _layout(body: str, vectors: str, compression: str | None) -> None:
    op.execute(f"ALTER TABLE fts_articles ALTER COLUMN body SET STORAGE {body}")
    for column in ("tsv", "tsv_short"):
        op.execute(f"ALTER TABLE fts_articles ALTER COLUMN {column} SET STORAGE {vectors}")
        if compression:
            op.execute(f"ALTER TABLE fts_articles ALTER COLUMN {column}"
                       f" SET COMPRESSION {compression}")
    # Storage settings apply to rows written from now on: write every row again.
    op.execute("UPDATE fts_articles SET body = body")


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    lz4 = op.get_bind().exec_driver_sql(_LZ4).scalar()
    _layout("EXTERNAL", "MAIN", "lz4" if lz4 else None)
    op.execute("CREATE TABLE fts_short (article_id integer PRIMARY KEY,"
               " status varchar(20) NOT NULL, visibility varchar(20) NOT NULL,"
               " category_id integer NOT NULL, tsv_short tsvector NOT NULL)")
    op.execute("INSERT INTO fts_short SELECT article_id, status, visibility, category_id,"
               " tsv_short FROM fts_articles")
    op.execute("CREATE INDEX ix_fts_short_tsv_short ON fts_short USING gin (tsv_short)")
    op.execute("DROP INDEX ix_fts_articles_tsv_short")
    op.execute("ANALYZE fts_articles, fts_short")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE INDEX ix_fts_articles_tsv_short ON fts_articles USING gin (tsv_short)")
    op.execute("DROP TABLE fts_short")
    _layout("EXTENDED", "EXTENDED", "default")
