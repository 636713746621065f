"""account_tokens (random, hashed, single-use emailed links); unconfirmed customers leave the
organisation their domain gave them until they confirm

Revision ID: security_0001
Revises: 0009_stale
"""

import sqlalchemy as sa
from alembic import op

revision = "security_0001"
down_revision = "0009_stale"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("spent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_account_tokens_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index("ix_account_tokens_user_purpose", "account_tokens", ["user_id", "purpose"])
    # Membership by domain needs a proven address: unconfirmed customers rejoin on confirming.
    op.execute(
        "UPDATE users SET organization_id = NULL "
        "WHERE email_confirmed_at IS NULL AND role = 'customer'"
    )


def downgrade():
    op.drop_index("ix_account_tokens_user_purpose", table_name="account_tokens")
    op.drop_table("account_tokens")
