"""Several hosts on one PostgreSQL: the change feed (both databases); on PostgreSQL only,
full-text search tables (weighted generated tsvector + GIN), the typo vocabulary (pg_trgm)
and the rate-limit counters (unlogged: losing them in a crash costs nothing).

Revision ID: cluster_0001
Revises: speed_0001
Create Date: 2026-12-06 02:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'cluster_0001'
down_revision = 'speed_0001'
branch_labels = None
depends_on = None

_TSV = (
    "setweight(to_tsvector('portal_english', title), 'A')"
    " || setweight(to_tsvector('portal_english', labels || ' ' || headings), 'B')"
    " || setweight(to_tsvector('portal_english', section), 'C')"
    " || setweight(to_tsvector('portal_english', body), 'D')"
)
# Instant results match the short fields only: a small vector ranks in a fraction of the time.
_TSV_SHORT = (
    "setweight(to_tsvector('portal_english', title), 'A')"
    " || setweight(to_tsvector('portal_english', labels || ' ' || headings), 'B')"
    " || setweight(to_tsvector('portal_english', section), 'C')"
)

POSTGRES_UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # English stemming after accent folding: "Café" and "cafe" meet, as in the Whoosh schema.
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'portal_english') THEN"
    " CREATE TEXT SEARCH CONFIGURATION portal_english (COPY = english);"
    " ALTER TEXT SEARCH CONFIGURATION portal_english ALTER MAPPING FOR hword, hword_part, word"
    " WITH unaccent, english_stem; END IF; END $$",
    "CREATE TABLE fts_articles ("
    " article_id integer PRIMARY KEY,"
    " title text NOT NULL, labels text NOT NULL, headings text NOT NULL,"
    " section text NOT NULL, body text NOT NULL,"
    " status varchar(20) NOT NULL, visibility varchar(20) NOT NULL, category_id integer NOT NULL,"
    " slug text NOT NULL, section_name text NOT NULL, category_name text NOT NULL,"
    " spell text[] NOT NULL,"
    f" tsv tsvector GENERATED ALWAYS AS ({_TSV}) STORED,"
    f" tsv_short tsvector GENERATED ALWAYS AS ({_TSV_SHORT}) STORED)",
    "CREATE INDEX ix_fts_articles_tsv ON fts_articles USING gin (tsv)",
    "CREATE INDEX ix_fts_articles_tsv_short ON fts_articles USING gin (tsv_short)",
    "CREATE INDEX ix_fts_articles_visible ON fts_articles (status, visibility, category_id)",
    "CREATE TABLE fts_vocabulary (word text PRIMARY KEY, articles integer NOT NULL)",
    "CREATE INDEX ix_fts_vocabulary_trgm ON fts_vocabulary USING gin (word gin_trgm_ops)",
    "CREATE UNLOGGED TABLE rate_limit_counters (key text PRIMARY KEY, hits integer NOT NULL,"
    " expires_at double precision NOT NULL)",
]


def upgrade():
    op.create_table('change_feed',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_change_feed'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        for statement in POSTGRES_UPGRADE:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('rate_limit_counters', 'fts_vocabulary', 'fts_articles'):
            op.execute(f"DROP TABLE IF EXISTS {table}")
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS portal_english")
    op.drop_table('change_feed')
