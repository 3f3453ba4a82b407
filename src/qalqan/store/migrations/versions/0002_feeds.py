"""Feeds, their runs and values, custom warninglists, warninglist flags on observables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:28:39.368888
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warninglists",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column(
            "kinds",
            sa.String(length=200),
            nullable=False,
            comment="comma-separated observable kinds",
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("entries", sa.Text(), nullable=False, comment="JSON list"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warninglists")),
        sa.UniqueConstraint("name", name=op.f("uq_warninglists_name")),
    )
    op.create_table(
        "feeds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False, comment="JSON, the source's options"),
        sa.Column("owner_org_id", sa.String(length=36), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=False),
        sa.Column("distribution", sa.String(length=20), nullable=False),
        sa.Column("sharing_group_id", sa.String(length=36), nullable=True),
        sa.Column("confidence", sa.SmallInteger(), nullable=True),
        sa.Column(
            "schedule_seconds", sa.Integer(), nullable=True, comment="run every N s; null: by hand"
        ),
        sa.Column(
            "expire_after_seconds", sa.BigInteger(), nullable=True, comment="null: never expire"
        ),
        sa.Column("on_warninglist", sa.String(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, comment="JSON, the source's cursors"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.Column(
            "lease_owner", sa.String(length=100), nullable=True, comment="the worker running it now"
        ),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_org_id"], ["orgs.id"], name=op.f("fk_feeds_owner_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["sharing_group_id"],
            ["sharing_groups.id"],
            name=op.f("fk_feeds_sharing_group_id_sharing_groups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
        sa.UniqueConstraint("name", name=op.f("uq_feeds_name")),
    )
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.create_index("ix_feeds_due", ["enabled", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feeds_owner_org_id"), ["owner_org_id"], unique=False)

    op.create_table(
        "feed_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feed_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False, comment="running, ok or failed"),
        sa.Column("trigger", sa.String(length=20), nullable=False, comment="cli, api or schedule"),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("warninglisted", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False, comment="JSON, the first rejects"),
        sa.Column("error", sa.Text(), nullable=True, comment="why the run failed"),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=op.f("fk_feed_runs_feed_id_feeds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_runs")),
    )
    with op.batch_alter_table("feed_runs", schema=None) as batch_op:
        batch_op.create_index("ix_feed_runs_feed", ["feed_id", "id"], unique=False)

    op.create_table(
        "feed_values",
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("feed_id", sa.String(length=36), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.Column("warninglist", sa.String(length=200), nullable=True),
        sa.Column(
            "digest", sa.String(length=32), nullable=False, comment="of what the feed said about it"
        ),
        sa.Column(
            "origin",
            sa.String(length=200),
            nullable=True,
            comment="the event or report it came from",
        ),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=op.f("fk_feed_values_feed_id_feeds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_feed_values")),
    )
    with op.batch_alter_table("feed_values", schema=None) as batch_op:
        batch_op.create_index("ix_feed_values_feed", ["feed_id", "origin"], unique=False)

    with op.batch_alter_table("observables", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "warninglist",
                sa.String(length=200),
                nullable=True,
                comment="the warninglist it is on, if any",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("observables", schema=None) as batch_op:
        batch_op.drop_column("warninglist")

    with op.batch_alter_table("feed_values", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_values_feed")

    op.drop_table("feed_values")
    with op.batch_alter_table("feed_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_runs_feed")

    op.drop_table("feed_runs")
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feeds_owner_org_id"))
        batch_op.drop_index("ix_feeds_due")

    op.drop_table("feeds")
    op.drop_table("warninglists")
