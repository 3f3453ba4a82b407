"""Initial schema: node, orgs, users, API keys, sharing groups, object versions, observables, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 13:44:46.061337
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("actor_org_id", sa.String(length=36), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "prev_hash",
            sa.String(length=64),
            nullable=True,
            comment="hash chain: filled by the audit service",
        ),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)

    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "public_key", sa.String(length=100), nullable=False, comment="Ed25519, base64 raw"
        ),
        sa.Column("is_local", sa.Boolean(), nullable=False),
        sa.Column("clock", sa.BigInteger(), nullable=False, comment="last date_added issued"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "orgs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("identity_id", sa.String(length=100), nullable=False),
        sa.Column("default_tlp", sa.SmallInteger(), nullable=False),
        sa.Column("default_distribution", sa.String(length=20), nullable=False),
        sa.Column("default_sharing_group_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_orgs_node_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("identity_id", name=op.f("uq_orgs_identity_id")),
        sa.UniqueConstraint("name", name=op.f("uq_orgs_name")),
    )
    op.create_table(
        "sharing_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_org_id", sa.String(length=36), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_org_id"], ["orgs.id"], name=op.f("fk_sharing_groups_owner_org_id_orgs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_sharing_groups_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_users_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_org_id"), ["org_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column(
            "prefix",
            sa.String(length=16),
            nullable=False,
            comment="first characters, to recognise a key",
        ),
        sa.Column("key_hash", sa.String(length=64), nullable=False, comment="SHA-256 of the key"),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "object_versions",
        sa.Column("date_added", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=250), nullable=False),
        sa.Column("spec_version", sa.String(length=10), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=True),
        sa.Column(
            "modified", sa.BigInteger(), nullable=False, comment="version key; created or 0 if none"
        ),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False, comment="the content says so"),
        sa.Column("withdrawn", sa.Boolean(), nullable=False, comment="withdrawn on this node"),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False, comment="the STIX object, verbatim JSON"),
        sa.Column("owner_org_id", sa.String(length=36), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=False),
        sa.Column("distribution", sa.String(length=20), nullable=False),
        sa.Column("sharing_group_id", sa.String(length=36), nullable=True),
        sa.Column(
            "source",
            sa.String(length=200),
            nullable=False,
            comment="user:<id>, feed:<id> or peer:<id>",
        ),
        sa.ForeignKeyConstraint(
            ["owner_org_id"], ["orgs.id"], name=op.f("fk_object_versions_owner_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["sharing_group_id"],
            ["sharing_groups.id"],
            name=op.f("fk_object_versions_sharing_group_id_sharing_groups"),
        ),
        sa.PrimaryKeyConstraint("date_added", name=op.f("pk_object_versions")),
        sa.UniqueConstraint(
            "stix_id", "modified", name=op.f("uq_object_versions_stix_id_modified")
        ),
    )
    with op.batch_alter_table("object_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_object_versions_type_latest", ["type", "is_latest", "date_added"], unique=False
        )
        batch_op.create_index(
            "ix_object_versions_owner", ["owner_org_id", "date_added"], unique=False
        )

    op.create_table(
        "sharing_group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["sharing_groups.id"],
            name=op.f("fk_sharing_group_members_group_id_sharing_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sharing_group_members_org_id_orgs")
        ),
        sa.PrimaryKeyConstraint("group_id", "org_id", name=op.f("pk_sharing_group_members")),
    )
    with op.batch_alter_table("sharing_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sharing_group_members_org_id"), ["org_id"], unique=False
        )

    op.create_table(
        "observables",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("ip_start", sa.String(length=32), nullable=True),
        sa.Column("ip_end", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["object_versions.date_added"],
            name=op.f("fk_observables_version_id_object_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observables")),
    )
    with op.batch_alter_table("observables", schema=None) as batch_op:
        batch_op.create_index("ix_observables_kind_ip", ["kind", "ip_start"], unique=False)
        batch_op.create_index("ix_observables_value", ["value"], unique=False)
        batch_op.create_index(batch_op.f("ix_observables_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("observables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observables_version_id"))
        batch_op.drop_index("ix_observables_value")
        batch_op.drop_index("ix_observables_kind_ip")

    op.drop_table("observables")
    with op.batch_alter_table("sharing_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_group_members_org_id"))

    op.drop_table("sharing_group_members")
    with op.batch_alter_table("object_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_object_versions_owner")
        batch_op.drop_index("ix_object_versions_type_latest")

    op.drop_table("object_versions")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_org_id"))

    op.drop_table("users")
    op.drop_table("sharing_groups")
    op.drop_table("orgs")
    op.drop_table("nodes")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")
