"""Typed settings, read from the environment (prefix ``QALQAN_``) and passed in, never global."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """What a Qalqan node needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="QALQAN_", extra="ignore")

    data_dir: Path = Field(default=Path(".qalqan"), description="Where the node keeps its files.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file in the data dir. "
        "Production: postgresql+psycopg://user@host/db",
    )
    max_body_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, description="Request limit.")
    page_size_default: int = Field(default=100, ge=1, le=10_000)
    page_size_max: int = Field(default=1000, ge=1, le=100_000)
    warninglist_cache: Path | None = Field(
        default=None,
        description="Where the compiled warninglists are cached; default: the data dir's cache/.",
    )
    feed_timeout: float = Field(default=60.0, gt=0, description="Seconds a feed fetch may take.")
    feed_max_bytes: int = Field(
        default=1 << 30, ge=1024, description="Largest feed resource fetched, in bytes."
    )
    export_min_confidence: int = Field(
        default=50,
        ge=0,
        le=100,
        description="Confidence floor of detection exports when a request names none; "
        "indicators without a confidence always pass.",
    )
    export_link_base: str | None = Field(
        default=None,
        description="This node's address as export readers reach it (https://host); detection "
        "exports then link each value to its object (Zeek meta.url).",
    )
    sweep_stored_hits: int = Field(
        default=10_000,
        ge=0,
        description="Hits of one sweep kept in the database (the output file has them all).",
    )
    sweep_max_upload_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="Largest log file POST /api/v1/sweeps accepts.",
    )
    sigma_rules: Path | None = Field(
        default=None, description="Directory of Sigma rules that API sweeps may apply."
    )
    evidence_max_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=1024,
        description="Largest evidence file POST /api/v1/evidence accepts.",
    )
    correlation_list_limit: int = Field(
        default=1000,
        ge=1,
        description="A value named by more visible objects than this is over-correlating: "
        "related lookups summarize it by org instead of listing the objects.",
    )
    # --- confidence decay (intel.scoring) ---
    decay_threshold: int = Field(
        default=30,
        ge=0,
        le=100,
        description="Below this score (or half its base, when lower) an indicator leaves "
        "detection exports and sweeps; it is kept, not deleted.",
    )
    decay_models: dict[str, tuple[float, float]] = Field(
        default={
            "ip": (30.0, 0.5),
            "cidr": (60.0, 0.5),
            "url": (60.0, 1.0),
            "domain": (120.0, 1.0),
            "email": (180.0, 1.0),
            "md5": (1095.0, 0.5),
            "sha1": (1095.0, 0.5),
            "sha256": (1095.0, 0.5),
            "sha512": (1095.0, 0.5),
            "other": (365.0, 1.0),
        },
        description="Decay per observable kind, as JSON {kind: [tau_days, delta]}: "
        "score = base * (1 - (t/tau)^(1/delta)), 0 after tau days; delta below 1 holds the "
        "score up and lets it fall late, above 1 lets it fall early. Kinds without a model "
        "use other's. See docs/scoring.md.",
    )
    # --- notification delivery (qalqan.notify) ---
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications; none: no e-mail is sent."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: str = Field(
        default="starttls",
        pattern="^(none|starttls|tls)$",
        description="none, starttls (upgrade a plain connection) or tls (TLS from the start).",
    )
    smtp_user: str | None = Field(default=None, description="Login for the SMTP server, if any.")
    smtp_password: SecretStr | None = Field(default=None, description="Never logged.")
    smtp_from: str = Field(
        default="qalqan@localhost", description="The From address of notification e-mail."
    )
    notify_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds one webhook call or SMTP session may take."
    )
    notify_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts per delivery before it is given up."
    )
    notify_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wait before the first retry; each further retry waits four times longer, "
        "at most six hours.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhooks to loopback, private and link-local addresses (off: such "
        "deliveries fail, so org admins cannot reach the node's internal network).",
    )
    task_due_notice_hours: float = Field(
        default=24.0, ge=0, description="How long before a task's due date its assignee is told."
    )
    env: str = Field(default="dev", description="dev, test or production")
    log_level: str = "info"

    @property
    def evidence_dir(self) -> Path:
        """Where evidence files are stored, by their SHA-256."""
        return self.data_dir / "evidence"

    @property
    def resolved_warninglist_cache(self) -> Path:
        """The directory of the compiled warninglists."""
        return self.warninglist_cache or self.data_dir / "cache"

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one or the data dir's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'qalqan.db').resolve()}"
