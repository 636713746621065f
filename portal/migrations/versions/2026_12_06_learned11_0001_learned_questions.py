"""Learned questions: the questions customers confirmed a suggested article answered, with
their vectors and who confirmed them (each customer once)

Revision ID: learned11_0001
Revises: alloc7_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "learned11_0001"
down_revision = "alloc7_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "learned_questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=300), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("model", sa.String(length=80), nullable=True),
        sa.Column("forgotten_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"],
                                name=op.f("fk_learned_questions_article_id_articles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_questions")),
        sa.UniqueConstraint("question", "article_id",
                            name=op.f("uq_learned_questions_question")),
    )
    with op.batch_alter_table("learned_questions") as batch_op:
        batch_op.create_index(batch_op.f("ix_learned_questions_article_id"), ["article_id"],
                              unique=False)
    op.create_table(
        "learned_confirmations",
        sa.Column("learned_question_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["learned_question_id"], ["learned_questions.id"],
            name=op.f("fk_learned_confirmations_learned_question_id_learned_questions"),
            ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_learned_confirmations_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("learned_question_id", "user_id",
                                name=op.f("pk_learned_confirmations")),
    )


def downgrade():
    op.drop_table("learned_confirmations")
    op.drop_table("learned_questions")
