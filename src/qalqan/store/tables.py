"""The schema, as SQLAlchemy Core tables. Migrations in ``migrations/`` create it.

Times are integers: microseconds since the Unix epoch, UTC. ``object_versions.date_added`` is
the node's strictly increasing clock and the primary key of a stored version, so it is also the
keyset cursor of every listing and the key the observable index points at.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "TEXT_INDEX",
    "UNMANAGED_TABLES",
    "api_keys",
    "audit_head",
    "audit_log",
    "case_assignees",
    "case_comments",
    "case_labels",
    "case_observables",
    "case_participants",
    "case_task_log",
    "case_tasks",
    "case_timeline",
    "cases",
    "detection_hits",
    "detection_runs",
    "evidence",
    "evidence_custody",
    "evidence_files",
    "feed_runs",
    "feed_values",
    "feeds",
    "index_cursors",
    "indicator_scores",
    "metadata",
    "nodes",
    "notification_deliveries",
    "notification_preferences",
    "notifications",
    "object_labels",
    "object_links",
    "object_versions",
    "observables",
    "orgs",
    "rfa_attachments",
    "rfa_events",
    "rfa_observables",
    "rfas",
    "sharing_group_members",
    "sharing_groups",
    "sightings",
    "taxii_collections",
    "taxii_statuses",
    "users",
    "warninglists",
    "webhooks",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UUID_LEN = 36

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("public_key", String(100), nullable=False, comment="Ed25519, base64 raw"),
    Column("is_local", Boolean, nullable=False, default=False),
    Column("clock", BigInteger, nullable=False, default=0, comment="last date_added issued"),
    Column("created_at", BigInteger, nullable=False),
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("country", String(2), nullable=False),
    Column("node_id", String(UUID_LEN), ForeignKey("nodes.id"), nullable=False),
    Column("identity_id", String(100), nullable=False, unique=True),
    Column("default_tlp", SmallInteger, nullable=False),
    Column("default_distribution", String(20), nullable=False),
    Column("default_sharing_group_id", String(UUID_LEN), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("user_id", String(UUID_LEN), ForeignKey("users.id"), nullable=False, index=True),
    Column("prefix", String(16), nullable=False, comment="first characters, to recognise a key"),
    Column("key_hash", String(64), nullable=False, unique=True, comment="SHA-256 of the key"),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

sharing_groups = Table(
    "sharing_groups",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("owner_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

sharing_group_members = Table(
    "sharing_group_members",
    metadata,
    Column(
        "group_id",
        String(UUID_LEN),
        ForeignKey("sharing_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), primary_key=True, index=True),
)

object_versions = Table(
    "object_versions",
    metadata,
    Column("date_added", BigInteger, primary_key=True, autoincrement=False),
    Column("stix_id", String(300), nullable=False),
    Column("type", String(250), nullable=False),
    Column("spec_version", String(10), nullable=True),
    Column("created", BigInteger, nullable=True),
    Column("modified", BigInteger, nullable=False, comment="version key; created or 0 if none"),
    Column("is_latest", Boolean, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False, comment="the content says so"),
    Column("withdrawn", Boolean, nullable=False, default=False, comment="withdrawn on this node"),
    Column("name", Text, nullable=True),
    Column("content", Text, nullable=False, comment="the STIX object, verbatim JSON"),
    Column("owner_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("tlp", SmallInteger, nullable=False),
    Column("distribution", String(20), nullable=False),
    Column("sharing_group_id", String(UUID_LEN), ForeignKey("sharing_groups.id"), nullable=True),
    Column("source", String(200), nullable=False, comment="user:<id>, feed:<id> or peer:<id>"),
    # Read from the content on insert (store.objects), so exports decide in SQL what is active.
    Column("confidence", SmallInteger, nullable=True, comment="the content's confidence"),
    Column("valid_until", BigInteger, nullable=True, comment="the content's valid_until"),
    Column("detect", Boolean, nullable=False, default=True, comment="false: not for detection"),
    Column(
        "recipient_org_id",
        String(UUID_LEN),
        ForeignKey("orgs.id"),
        nullable=True,
        comment="one more org that may read it (the owner of the indicator a sighting is about)",
    ),
    UniqueConstraint("stix_id", "modified"),
    # Unfiltered listings walk the primary key (date_added); listings by type use this one.
    Index("ix_object_versions_type_latest", "type", "is_latest", "date_added"),
    Index("ix_object_versions_owner", "owner_org_id", "date_added"),
    Index("ix_object_versions_recipient", "recipient_org_id", "date_added"),
)

observables = Table(
    "observables",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "version_id",
        BigInteger,
        ForeignKey("object_versions.date_added", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Column("ip_start", String(32), nullable=True),
    Column("ip_end", String(32), nullable=True),
    Column("warninglist", String(200), nullable=True, comment="the warninglist it is on, if any"),
    Column(
        "rvalue",
        Text,
        nullable=True,
        comment="domains: the value reversed, so a suffix search is a prefix range",
    ),
    Index("ix_observables_value", "value"),
    Index("ix_observables_kind_ip", "kind", "ip_start"),
    Index("ix_observables_rvalue", "rvalue"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor_user_id", String(UUID_LEN), nullable=True),
    Column("actor_org_id", String(UUID_LEN), nullable=True),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=True),
    Column("detail", Text, nullable=False, default="{}"),
    Column(
        "prev_hash", String(64), nullable=True, comment="hash chain: filled by the audit service"
    ),
    Column("hash", String(64), nullable=True),
    Index("ix_audit_log_at", "at"),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", String(30), nullable=False),
    Column("url", Text, nullable=False),
    Column("options", Text, nullable=False, default="{}", comment="JSON, the source's options"),
    Column("owner_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("tlp", SmallInteger, nullable=False),
    Column("distribution", String(20), nullable=False),
    Column("sharing_group_id", String(UUID_LEN), ForeignKey("sharing_groups.id"), nullable=True),
    Column("confidence", SmallInteger, nullable=True),
    Column("schedule_seconds", Integer, nullable=True, comment="run every N s; null: by hand"),
    Column("expire_after_seconds", BigInteger, nullable=True, comment="null: never expire"),
    Column("on_warninglist", String(10), nullable=False, default="flag"),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("state", Text, nullable=False, default="{}", comment="JSON, the source's cursors"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
    Column("next_run_at", BigInteger, nullable=True),
    Column("lease_owner", String(100), nullable=True, comment="the worker running it now"),
    Column("lease_until", BigInteger, nullable=True),
    Index("ix_feeds_due", "enabled", "next_run_at"),
)

feed_runs = Table(
    "feed_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed_id", String(UUID_LEN), ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("status", String(10), nullable=False, comment="running, ok or failed"),
    Column("trigger", String(20), nullable=False, comment="cli, api or schedule"),
    Column("new", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("expired", Integer, nullable=False, default=0),
    Column("warninglisted", Integer, nullable=False, default=0),
    Column("dropped", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("errors", Text, nullable=False, default="[]", comment="JSON, the first rejects"),
    Column("error", Text, nullable=True, comment="why the run failed"),
    Index("ix_feed_runs_feed", "feed_id", "id"),
)

feed_values = Table(
    "feed_values",
    metadata,
    # A 64-bit digest of (feed, kind, value): a small integer key keeps the index that every
    # lookup and insert of a feed run touches at random compact (see store.feeds.value_key).
    Column("key_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("feed_id", String(UUID_LEN), ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("value", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("stix_id", String(300), nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("expired", Boolean, nullable=False, default=False),
    Column("warninglist", String(200), nullable=True),
    Column("digest", String(32), nullable=False, comment="of what the feed said about it"),
    Column("origin", String(200), nullable=True, comment="the event or report it came from"),
    # A run inserts one feed's values together, so this index grows at one place, not at random.
    Index("ix_feed_values_feed", "feed_id", "origin"),
)

warninglists = Table(
    "warninglists",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("type", String(20), nullable=False),
    Column("kinds", String(200), nullable=False, comment="comma-separated observable kinds"),
    Column("description", Text, nullable=False, default=""),
    Column("entries", Text, nullable=False, comment="JSON list"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
)

taxii_collections = Table(
    "taxii_collections",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("alias", String(100), nullable=True, unique=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("types", Text, nullable=True, comment="comma-separated STIX types; null: all"),
    Column("max_tlp", SmallInteger, nullable=True, comment="TLP ceiling of what it shows"),
    Column("sharing_group_id", String(UUID_LEN), ForeignKey("sharing_groups.id"), nullable=True),
    Column("writable", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
)

taxii_statuses = Table(
    "taxii_statuses",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("collection_id", String(UUID_LEN), nullable=False),
    Column("status", String(20), nullable=False, comment="pending or complete"),
    Column("request_timestamp", BigInteger, nullable=False),
    Column("total_count", Integer, nullable=False),
    Column("success_count", Integer, nullable=False, default=0),
    Column("failure_count", Integer, nullable=False, default=0),
    Column("pending_count", Integer, nullable=False, default=0),
    Column("successes", Text, nullable=False, default="[]", comment="JSON status details"),
    Column("failures", Text, nullable=False, default="[]", comment="JSON status details"),
    Column("pendings", Text, nullable=False, default="[]", comment="JSON status details"),
)

detection_runs = Table(
    "detection_runs",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("user_id", String(UUID_LEN), nullable=True),
    Column("origin", String(20), nullable=False, comment="cli, api or watch"),
    Column("status", String(20), nullable=False, comment="queued, running, done or failed"),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("files", Text, nullable=False, default="[]", comment="JSON list of file names"),
    Column("options", Text, nullable=False, default="{}", comment="JSON: format, map, rules"),
    Column("summary", Text, nullable=False, default="{}", comment="JSON run summary"),
    Column("hit_count", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Index("ix_detection_runs_org", "org_id", "created_at"),
)

detection_hits = Table(
    "detection_hits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "run_id",
        String(UUID_LEN),
        ForeignKey("detection_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(10), nullable=False, comment="indicator or rule"),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=True),
    Column("event_time", BigInteger, nullable=True),
    Column("match_id", String(300), nullable=False, comment="indicator STIX id or rule id"),
    Column("value", Text, nullable=True),
    Column("field", String(200), nullable=True),
    Column("title", Text, nullable=True),
    Column("level", String(20), nullable=True),
    Column("owner_org_id", String(UUID_LEN), nullable=True),
    Column("tlp", SmallInteger, nullable=True),
    Column("confidence", SmallInteger, nullable=True),
    Column("tags", Text, nullable=True, comment="JSON list of rule tags"),
    Column("event", Text, nullable=False, comment="JSON of the event's fields"),
    Index("ix_detection_hits_run", "run_id", "id"),
    Index("ix_detection_hits_match", "match_id"),
)

# What the analysis index (intel.indexing) derives from stored versions. It is filled after the
# versions are written, from a cursor over ``date_added``, so every writer (imports, feeds, peers)
# is covered without each knowing of it, and an upgraded node indexes what it already holds.

index_cursors = Table(
    "index_cursors",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("position", BigInteger, nullable=False, comment="the last date_added indexed"),
)

object_links = Table(
    "object_links",
    metadata,
    Column(
        "version_id",
        BigInteger,
        ForeignKey("object_versions.date_added", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("source_ref", String(300), primary_key=True),
    Column("target_ref", String(300), primary_key=True),
    Column(
        "link_type",
        String(100),
        primary_key=True,
        comment="a relationship's type, or sighting-of, object-ref, sample-ref, ...",
    ),
    Index("ix_object_links_target", "target_ref", "link_type"),
    Index("ix_object_links_source", "source_ref", "link_type"),
)

sightings = Table(
    "sightings",
    metadata,
    Column(
        "version_id",
        BigInteger,
        ForeignKey("object_versions.date_added", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("sighting_of_ref", String(300), nullable=False),
    Column("kind", String(20), nullable=False, comment="sighting, false-positive or expiration"),
    Column("count", BigInteger, nullable=False),
    Column("first_seen", BigInteger, nullable=True),
    Column("last_seen", BigInteger, nullable=True),
    Index("ix_sightings_of", "sighting_of_ref", "version_id"),
)

object_labels = Table(
    "object_labels",
    metadata,
    Column(
        "version_id",
        BigInteger,
        ForeignKey("object_versions.date_added", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("label", String(250), primary_key=True),
    Index("ix_object_labels_label", "label", "version_id"),
)

indicator_scores = Table(
    "indicator_scores",
    metadata,
    Column("stix_id", String(300), primary_key=True),
    Column("kind", String(16), nullable=True, comment="observable kind whose decay model applies"),
    Column("base", SmallInteger, nullable=False, comment="the confidence the score decays from"),
    Column("false_positives", Integer, nullable=False, default=0),
    Column("reset_at", BigInteger, nullable=False, comment="decay counts from here"),
    Column("expired_at", BigInteger, nullable=True, comment="reported expired at"),
    Column("listed_at", BigInteger, nullable=True, comment="a feed last listed it at"),
    Column(
        "decays_at", BigInteger, nullable=True, comment="falls below the threshold; null: never"
    ),
    Column("score", SmallInteger, nullable=False, comment="0-100 as of refreshed_at"),
    Column("refreshed_at", BigInteger, nullable=False),
    Index("ix_indicator_scores_decays", "decays_at"),
    Index("ix_indicator_scores_score", "score", "stix_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(50), nullable=False, comment="e.g. sighting"),
    Column("subject", String(300), nullable=True, comment="the STIX id it is about"),
    Column("detail", Text, nullable=False, default="{}", comment="JSON"),
    Column("created_at", BigInteger, nullable=False),
    Column("read_at", BigInteger, nullable=True),
    Column(
        "user_id",
        String(UUID_LEN),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=True,
        comment="the one user it is for (an assignment); null: the whole org",
    ),
    Column(
        "dispatched_at",
        BigInteger,
        nullable=True,
        comment="when its webhook and e-mail deliveries were made; null: not yet",
    ),
    Index("ix_notifications_org", "org_id", "id"),
    Index(
        "ix_notifications_undispatched",
        "id",
        sqlite_where=text("dispatched_at IS NULL"),
        postgresql_where=text("dispatched_at IS NULL"),
    ),
)

# Where notifications go besides the in-app list: an org's webhooks (the shared secret is never
# stored: it is derived from the node's key and the webhook's salt) and the e-mail each user
# chose, and one row per attempt target in the delivery log.

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(300), nullable=False, default=""),
    Column("kinds", Text, nullable=False, comment='JSON list of notification kinds; ["*"]: all'),
    Column("active", Boolean, nullable=False, default=True),
    Column("salt", String(64), nullable=False, comment="with the node key, gives the secret"),
    Column("created_by", String(UUID_LEN), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_webhooks_org", "org_id"),
)

notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column(
        "user_id",
        String(UUID_LEN),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(50), primary_key=True),
    Column("email", Boolean, nullable=False, comment="send this kind by e-mail"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "notification_id",
        Integer,
        ForeignKey("notifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("channel", String(10), nullable=False, comment="webhook or email"),
    Column(
        "webhook_id",
        String(UUID_LEN),
        ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column(
        "user_id",
        String(UUID_LEN),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("status", String(10), nullable=False, comment="pending, delivered or failed"),
    Column("attempts", SmallInteger, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("last_code", Integer, nullable=True, comment="HTTP status or SMTP reply code"),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("lease_until", BigInteger, nullable=True, comment="a sender is working on it"),
    Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    Index("ix_notification_deliveries_webhook", "webhook_id", "id"),
    Index("ix_notification_deliveries_org", "org_id", "id"),
)

# The full-text index is not a SQLAlchemy table: an FTS5 virtual table on SQLite, a table with a
# generated tsvector and a GIN index on PostgreSQL (see migration 0005 and store.search).
TEXT_INDEX = "object_text"
UNMANAGED_TABLES = frozenset({TEXT_INDEX, *(f"{TEXT_INDEX}_{s}" for s in (
    "data", "idx", "content", "docsize", "config"))})  # fmt: skip

# Cases: cross-border incidents and investigations, worked by the orgs taking part in them.

cases = Table(
    "cases",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("number", Integer, nullable=False, unique=True, comment="human-friendly, per node"),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("severity", SmallInteger, nullable=False, comment="1 low, 2 medium, 3 high, 4 critical"),
    Column("tlp", SmallInteger, nullable=False),
    Column("pap", SmallInteger, nullable=False, comment="PAP: 0 clear, 1 green, 2 amber, 3 red"),
    Column(
        "status",
        String(20),
        nullable=False,
        comment="new, in-progress, on-hold, resolved or closed",
    ),
    Column("resolution", Text, nullable=True),
    Column("owner_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("template", String(50), nullable=True),
    Column("attack_techniques", Text, nullable=False, default="[]", comment="JSON list of ids"),
    Column("custom_fields", Text, nullable=False, default="{}", comment="JSON object"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Index("ix_cases_status", "status", "updated_at", "id"),
    Index("ix_cases_updated", "updated_at", "id"),
)

case_participants = Table(
    "case_participants",
    metadata,
    Column(
        "case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), primary_key=True),
    Column("role", String(20), nullable=False, comment="lead, contributor or observer"),
    Column("added_at", BigInteger, nullable=False),
    Column("added_by", String(UUID_LEN), nullable=True),
    Index("ix_case_participants_org", "org_id", "case_id"),
)

case_assignees = Table(
    "case_assignees",
    metadata,
    Column(
        "case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", String(UUID_LEN), ForeignKey("users.id"), primary_key=True),
    Index("ix_case_assignees_user", "user_id", "case_id"),
)

case_labels = Table(
    "case_labels",
    metadata,
    Column(
        "case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("label", String(100), primary_key=True),
    Index("ix_case_labels_label", "label", "case_id"),
)

case_tasks = Table(
    "case_tasks",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("status", String(20), nullable=False, comment="open, in-progress, done, cancelled"),
    Column("org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=True),
    Column("assignee_user_id", String(UUID_LEN), ForeignKey("users.id"), nullable=True),
    Column("due_at", BigInteger, nullable=True),
    Column("position", Integer, nullable=False, default=0, comment="order within the case"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Index("ix_case_tasks_case", "case_id", "position", "id"),
    Index("ix_case_tasks_assignee", "assignee_user_id", "status"),
    Index("ix_case_tasks_due", "status", "due_at"),
)

case_task_log = Table(
    "case_task_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "task_id", String(UUID_LEN), ForeignKey("case_tasks.id", ondelete="CASCADE"), nullable=False
    ),
    Column("at", BigInteger, nullable=False),
    Column("user_id", String(UUID_LEN), nullable=True),
    Column("org_id", String(UUID_LEN), nullable=True),
    Column("text", Text, nullable=False),
    Index("ix_case_task_log_task", "task_id", "id"),
)

case_timeline = Table(
    "case_timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("at", BigInteger, nullable=False, comment="when it was recorded"),
    Column("event_time", BigInteger, nullable=True, comment="when it happened, for manual entries"),
    Column("kind", String(10), nullable=False, comment="auto or manual"),
    Column("action", String(100), nullable=False),
    Column("actor_user_id", String(UUID_LEN), nullable=True),
    Column("actor_org_id", String(UUID_LEN), nullable=True),
    Column("text", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}", comment="JSON"),
    Index("ix_case_timeline_case", "case_id", "id"),
)

case_comments = Table(
    "case_comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("author_user_id", String(UUID_LEN), nullable=True),
    Column("author_org_id", String(UUID_LEN), nullable=False),
    Column("body", Text, nullable=False),
    Column("mentions", Text, nullable=False, default="[]", comment="JSON list of org ids"),
    Index("ix_case_comments_case", "case_id", "id"),
)

case_observables = Table(
    "case_observables",
    metadata,
    Column(
        "case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("kind", String(16), primary_key=True),
    Column("value", Text, primary_key=True),
    Column("stix_id", String(300), nullable=True, comment="the intelligence object it came from"),
    Column("note", Text, nullable=False, default=""),
    Column("added_at", BigInteger, nullable=False),
    Column("added_by", String(UUID_LEN), nullable=True),
    Column("added_by_org", String(UUID_LEN), nullable=True),
)

# Requests for assistance between member orgs: one asks, one answers, both (and their org
# admins) see it; nobody else does.

rfas = Table(
    "rfas",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("number", Integer, nullable=False, unique=True, comment="human-friendly, per node"),
    Column("kind", String(30), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False, default=""),
    Column("legal_basis", Text, nullable=False, default=""),
    Column("priority", SmallInteger, nullable=False, comment="1 low, 2 medium, 3 high, 4 urgent"),
    Column("requester_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("recipient_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("case_id", String(UUID_LEN), ForeignKey("cases.id", ondelete="SET NULL"), nullable=True),
    Column("status", String(20), nullable=False),
    Column("due_at", BigInteger, nullable=True, comment="answer requested by"),
    Column("answer", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(UUID_LEN), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Column("acknowledged_at", BigInteger, nullable=True),
    Column("answered_at", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),
    Index("ix_rfas_requester", "requester_org_id", "updated_at", "id"),
    Index("ix_rfas_recipient", "recipient_org_id", "updated_at", "id"),
    Index("ix_rfas_due", "status", "due_at"),
)

rfa_events = Table(
    "rfa_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rfa_id", String(UUID_LEN), ForeignKey("rfas.id", ondelete="CASCADE"), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("actor_user_id", String(UUID_LEN), nullable=True),
    Column("actor_org_id", String(UUID_LEN), nullable=True),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Index("ix_rfa_events_rfa", "rfa_id", "id"),
)

rfa_observables = Table(
    "rfa_observables",
    metadata,
    Column("rfa_id", String(UUID_LEN), ForeignKey("rfas.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", Text, primary_key=True),
)

# Evidence: files stored once by their SHA-256 (evidence_files), each upload to a case an
# evidence item with its chain of custody.

evidence_files = Table(
    "evidence_files",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("stored_at", BigInteger, nullable=False),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("case_id", String(UUID_LEN), ForeignKey("cases.id"), nullable=False),
    Column("sha256", String(64), ForeignKey("evidence_files.sha256"), nullable=False),
    Column("name", String(255), nullable=False, comment="the file name, neutralized"),
    Column("media_type", String(100), nullable=False, comment="as declared; never served as it"),
    Column("size", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("collected_by", String(300), nullable=False, default=""),
    Column("collected_at", BigInteger, nullable=True),
    Column("collection_method", Text, nullable=False, default=""),
    Column("uploaded_by", String(UUID_LEN), nullable=True),
    Column("uploaded_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_evidence_case", "case_id", "created_at", "id"),
)

evidence_custody = Table(
    "evidence_custody",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "evidence_id",
        String(UUID_LEN),
        ForeignKey("evidence.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", BigInteger, nullable=False),
    Column("actor_user_id", String(UUID_LEN), nullable=True),
    Column("actor_org_id", String(UUID_LEN), nullable=True),
    Column("action", String(30), nullable=False, comment="collected, uploaded, downloaded, ..."),
    Column("detail", Text, nullable=False, default="{}", comment="JSON"),
    Index("ix_evidence_custody_evidence", "evidence_id", "id"),
)

# The head of the audit hash chain: one row, updated by every append in the appender's
# transaction, so appenders take turns and each entry's hash covers the one before it.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False, comment="always 1"),
    Column("last_id", BigInteger, nullable=False, comment="id of the last entry (0: none)"),
    Column("last_hash", String(64), nullable=False),
)

# Files attached to the answer of a request for assistance: evidence items of the request's case.
rfa_attachments = Table(
    "rfa_attachments",
    metadata,
    Column("rfa_id", String(UUID_LEN), ForeignKey("rfas.id", ondelete="CASCADE"), primary_key=True),
    Column("evidence_id", String(UUID_LEN), ForeignKey("evidence.id"), primary_key=True),
    Column("attached_by", String(UUID_LEN), nullable=True),
    Column("attached_org_id", String(UUID_LEN), ForeignKey("orgs.id"), nullable=False),
    Column("attached_at", BigInteger, nullable=False),
    Index("ix_rfa_attachments_evidence", "evidence_id"),
)
