"""The audit log: who did what, when — an append-only hash chain.

Every write and every export records one entry in the writer's transaction (:func:`record`).
Each entry's hash covers its fields and the hash of the entry before it (see
:mod:`qalqan.domain.audit`), so :func:`verify` finds the first entry changed, removed or
reordered by hand; :func:`signed_extract` writes entries as JSON lines closed by a line that
the node's Ed25519 key signs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection

from qalqan.domain.audit import GENESIS, entry_hash
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp
from qalqan.errors import ConfigurationError
from qalqan.store import audit as store
from qalqan.store.audit import AuditEntry
from qalqan.store.clock import now_us

__all__ = [
    "ChainReport",
    "node_key",
    "record",
    "signed_extract",
    "verify",
    "verify_extract",
]


def record(
    conn: Connection,
    actor: Principal | None,
    action: str,
    *,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction (so it commits or rolls back with the write).

    ``detail`` must never hold secrets: callers pass counts, ids and names only.
    """
    store.append_entry(
        conn,
        at=now_us(),
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action=action,
        target=target,
        detail=orjson.dumps(dict(detail or {})).decode(),
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify` found: entries checked and, if the chain is broken, where first."""

    checked: int
    last_id: int
    broken_at: int | None = None  # the id of the first entry that does not verify
    position: int | None = None  # its position in the chain, from 1
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "last_id": self.last_id,
            "broken_at": self.broken_at,
            "position": self.position,
            "reason": self.reason,
        }


def verify(conn: Connection, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Walk the chain from its first entry and report the first broken link, if any."""
    previous, expected_id, checked = GENESIS, None, 0
    dumps, sha256 = orjson.dumps, hashlib.sha256
    for row in store.iter_rows(conn):
        checked += 1
        # The common case inline (each entry is hashed once); a mismatch is then explained.
        entry_id, at, user, org, action, target, detail, prev_hash, digest = row
        if (
            prev_hash != previous
            or (expected_id is not None and entry_id != expected_id)
            or sha256(dumps([previous, entry_id, at, user, org, action, target, detail]))
            .hexdigest() != digest
        ):  # fmt: skip
            entry = AuditEntry(*row)  # type: ignore[arg-type]
            why = _broken(entry, previous, expected_id) or "its hash does not verify"
            return ChainReport(checked, entry.id, entry.id, checked, why)
        previous, expected_id = str(digest), int(entry_id) + 1  # type: ignore[call-overload]
        if progress is not None and checked % 10_000 == 0:
            progress(10_000)
    last_id, last_hash = store.chain_head(conn)
    if (last_id, last_hash) != ((expected_id or 1) - 1, previous):
        return ChainReport(
            checked,
            last_id,
            last_id,
            checked + 1,
            "the last entries are missing: the chain's head names a later entry",
        )
    return ChainReport(checked, last_id)


def _broken(entry: AuditEntry, previous: str, expected_id: int | None) -> str | None:
    if expected_id is not None and entry.id != expected_id:
        return f"entries {expected_id}..{entry.id - 1} are missing"
    if entry.prev_hash != previous:
        return "its prev_hash is not the hash of the entry before it"
    digest = entry_hash(
        previous,
        entry.id,
        entry.at,
        entry.actor_user_id,
        entry.actor_org_id,
        entry.action,
        entry.target,
        entry.detail,
    )
    if entry.hash != digest:
        return "its content does not match its hash (changed after it was written)"
    return None


def node_key(data_dir: Path) -> Ed25519PrivateKey:
    """The node's Ed25519 private key, from the data dir (ConfigurationError if unusable)."""
    path = data_dir / "node_ed25519.pem"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the node's signing key {path.name}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path.name} is not an Ed25519 private key")
    return key


def _line(entry: AuditEntry) -> bytes:
    return orjson.dumps(
        {
            "id": entry.id,
            "at": format_timestamp(entry.at),
            "actor_user_id": entry.actor_user_id,
            "actor_org_id": entry.actor_org_id,
            "action": entry.action,
            "target": entry.target,
            "detail": entry.detail,
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
            "at_us": entry.at,
        }
    )


def signed_extract(conn: Connection, data_dir: Path, since: int | None = None) -> Iterator[bytes]:
    """The entries recorded at or after ``since`` as JSON lines, then one ``signature`` line:
    the node's Ed25519 signature of the SHA-256 of every line before it, with the node's
    public key. Each entry keeps its chain hashes, so the extract can be checked link by link
    and as a whole (:func:`verify_extract`)."""
    key = node_key(data_dir)
    digest = hashlib.sha256()
    count = 0
    for entry in store.iter_entries(conn, since=since):
        line = _line(entry) + b"\n"
        digest.update(line)
        count += 1
        yield line
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    yield (
        orjson.dumps(
            {
                "signature": base64.b64encode(key.sign(digest.digest())).decode(),
                "algorithm": "Ed25519 over SHA-256 of the preceding lines",
                "public_key": base64.b64encode(public).decode(),
                "entries": count,
                "since": format_timestamp(since) if since is not None else None,
                "created": format_timestamp(now_us()),
            }
        )
        + b"\n"
    )


def verify_extract(lines: list[bytes], public_key: bytes | None = None) -> str | None:
    """Why an extract does not verify (signature or a link of its chain), or None if it does.
    ``public_key`` (raw Ed25519) pins the signer; without it the key in the extract is used."""
    if not lines:
        return "the extract is empty"
    try:
        trailer = orjson.loads(lines[-1])
        signature = base64.b64decode(trailer["signature"])
        key = public_key or base64.b64decode(trailer["public_key"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "the last line is not a signature"
    digest = hashlib.sha256(b"".join(lines[:-1])).digest()
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, digest)
    except Exception:
        return "the signature does not match the entries"
    previous: str | None = None
    for number, raw in enumerate(lines[:-1], 1):
        e = orjson.loads(raw)
        if previous is not None and e["prev_hash"] != previous:
            return f"line {number}: its prev_hash is not the hash of the line before"
        digest_hex = entry_hash(
            e["prev_hash"], e["id"], e["at_us"], e["actor_user_id"], e["actor_org_id"],
            e["action"], e["target"], e["detail"],
        )  # fmt: skip
        if digest_hex != e["hash"]:
            return f"line {number}: its content does not match its hash"
        previous = e["hash"]
    return None
