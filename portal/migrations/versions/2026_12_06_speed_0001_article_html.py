"""articles.body_html / body_toc: the rendered, sanitised body kept with the article

Revision ID: speed_0001
Revises: email_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "speed_0001"
down_revision = "email_0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("articles") as batch_op:
        batch_op.add_column(sa.Column("body_html", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("body_toc", sa.JSON(), nullable=True))
    # Existing articles are rendered once here (the page renders any left NULL itself).
    from portal.kb.markdown import render_markdown

    connection = op.get_bind()
    articles = sa.table("articles", sa.column("id", sa.Integer), sa.column("body", sa.Text),
                        sa.column("body_html", sa.Text), sa.column("body_toc", sa.JSON))
    for article_id, body in connection.execute(sa.select(articles.c.id, articles.c.body)).all():
        rendered = render_markdown(body)
        connection.execute(articles.update().where(articles.c.id == article_id).values(
            body_html=str(rendered.html), body_toc=rendered.toc))


def downgrade():
    with op.batch_alter_table("articles") as batch_op:
        batch_op.drop_column("body_toc")
        batch_op.drop_column("body_html")
