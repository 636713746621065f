"""Merge the domain branches (agent search indexes, foundation invites) into one head.

Revision ID: 0007_merge_heads
Revises: 0004_agent_search, 0006_foundation
Create Date: 2026-11-23 21:55:00
"""

revision = "0007_merge_heads"
down_revision = ("0004_agent_search", "0006_foundation")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
