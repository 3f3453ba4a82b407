"""Node identity, organizations, users, API keys and sharing groups.

Secrets: passwords are hashed with argon2id; API keys are 256-bit random tokens, shown once and
stored as their SHA-256 (a fast hash is right for high-entropy tokens and keeps every request's
lookup an index probe). Neither is ever logged or written to the audit log.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.countries import parse_country
from qalqan.domain.handling import TLP, Distribution, marking_object
from qalqan.domain.principal import Principal, Role
from qalqan.domain.stix import format_timestamp
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.policy import can_administer_node, can_administer_org, handling_problem
from qalqan.store import accounts as store
from qalqan.store.clock import now_us

__all__ = [
    "KEY_PREFIX",
    "Bootstrap",
    "NewKey",
    "add_group_member",
    "add_org",
    "add_user",
    "authenticate",
    "authenticate_password",
    "bootstrap",
    "create_group",
    "create_key",
    "groups_for",
    "identify",
    "init_node",
    "keys_for",
    "principal_for",
    "record_use",
    "remove_group_member",
    "revoke_key",
    "set_org_defaults",
    "set_user_disabled",
    "system_principal",
    "users_for",
    "verify_password",
]

KEY_PREFIX = "qk_"
_KEY_TOUCH_INTERVAL_US = 60_000_000
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@functools.cache
def _nobody() -> store.UserRecord:
    """A user that exists nowhere, whose hash no password matches: checked against when the
    user named in credentials does not exist."""
    return store.UserRecord("", "", "", "", _hasher.hash(os.urandom(16).hex()), False, 0)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created API key; ``secret`` exists only here and is never stored."""

    record: store.KeyRecord
    secret: str


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def init_node(conn: Connection, data_dir: Path, name: str) -> store.NodeRecord:
    """Create this node's identity: a UUID and an Ed25519 key pair (private key in the data dir)."""
    if store.local_node(conn) is not None:
        raise Conflict("this node is already initialised")
    key = Ed25519PrivateKey.generate()
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / "node_ed25519.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    node = store.NodeRecord(
        id=str(uuid.uuid4()),
        name=name,
        public_key=base64.b64encode(public).decode(),
        created_at=now_us(),
    )
    store.insert_node(conn, node, is_local=True)
    record(conn, None, "node.init", target=node.id, detail={"name": name})
    return node


def system_principal(org: store.OrgRecord, conn: Connection) -> Principal:
    """The principal the local admin console acts as for ``org`` (a node administrator)."""
    return Principal(
        user_id=None,
        org_id=org.id,
        role=Role.NODE_ADMIN,
        group_ids=store.group_ids_of_org(conn, org.id),
    )


def principal_for(conn: Connection, user: store.UserRecord) -> Principal:
    """The principal a user acts as."""
    return Principal(
        user_id=user.id,
        org_id=user.org_id,
        role=Role(user.role),
        group_ids=store.group_ids_of_org(conn, user.org_id),
        email=user.email,
    )


def _identity_object(org_id: str, name: str, country: str, at: int) -> dict[str, object]:
    stamp = format_timestamp(at)
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{org_id}",
        "created": stamp,
        "modified": stamp,
        "name": name,
        "identity_class": "organization",
        "sectors": ["government-national"],
        "x_qalqan_country": country,
    }


def add_org(
    conn: Connection,
    actor: Principal | None,
    name: str,
    country: str,
    *,
    default_tlp: TLP = TLP.AMBER,
    default_distribution: Distribution = Distribution.NODE,
) -> store.OrgRecord:
    """Create an org with its STIX ``identity`` object (TLP:CLEAR, distribution ``all``)."""
    if actor is not None and not can_administer_node(actor):
        raise Forbidden("only a node administrator may add organizations")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("an organization name must be 1 to 200 characters", field="name")
    try:
        code = parse_country(country)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="country") from None
    why = handling_problem(default_tlp, default_distribution, None)
    if why:
        raise InvalidInput(f"default handling refused: {why}", field="default_distribution")
    node = store.local_node(conn)
    if node is None:
        raise Conflict("this node is not initialised; run `qalqan init`")
    org_id = str(uuid.uuid4())
    at = now_us()
    org = store.OrgRecord(
        id=org_id,
        name=name,
        country=code,
        node_id=node.id,
        identity_id=f"identity--{org_id}",
        default_tlp=int(default_tlp),
        default_distribution=default_distribution.value,
        default_sharing_group_id=None,
        created_at=at,
    )
    store.insert_org(conn, org)
    record(conn, actor, "org.add", target=org.id, detail={"name": name, "country": code})
    owner = Principal(user_id=None, org_id=org.id, role=Role.NODE_ADMIN)
    report = import_objects(
        conn,
        owner,
        [_identity_object(org_id, name, code, at)],
        HandlingRequest(TLP.CLEAR, Distribution.ALL),
        source="node",
    )
    if report.rejected:
        raise InvalidInput(f"identity of {name!r} refused: {report.rejected[0].reason}")
    return org


def add_user(
    conn: Connection,
    actor: Principal | None,
    email: str,
    org_ref: str,
    role: Role,
    password: str | None = None,
) -> store.UserRecord:
    """Create a user of an org; the password, if any, is stored as an argon2id hash."""
    org = store.get_org(conn, org_ref)
    if actor is not None and not can_administer_org(actor, org.id):
        raise Forbidden(f"you may not add users to {org.name!r}")
    if actor is not None and role is Role.NODE_ADMIN and not can_administer_node(actor):
        raise Forbidden("only a node administrator may create node administrators")
    email = email.strip().lower()
    if email.count("@") != 1 or len(email) > 320 or email.startswith("@") or email.endswith("@"):
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    if password is not None and len(password) < 12:
        raise InvalidInput("a password needs at least 12 characters", field="password")
    user = store.UserRecord(
        id=str(uuid.uuid4()),
        email=email,
        org_id=org.id,
        role=role.value,
        password_hash=_hasher.hash(password) if password else None,
        disabled=False,
        created_at=now_us(),
    )
    store.insert_user(conn, user)
    record(conn, actor, "user.add", target=user.id, detail={"email": email, "role": role.value})
    return user


def verify_password(user: store.UserRecord, password: str) -> bool:
    """Does ``password`` match the user's stored hash?"""
    if not user.password_hash or user.disabled:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_key(conn: Connection, actor: Principal | None, user_ref: str, label: str = "") -> NewKey:
    """Create an API key for a user; the secret is returned once and stored only hashed."""
    user = store.get_user(conn, user_ref)
    if (
        actor is not None
        and actor.user_id != user.id
        and not can_administer_org(actor, user.org_id)
    ):
        raise Forbidden("you may only create keys for yourself or users of an org you administer")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = store.KeyRecord(
        id=str(uuid.uuid4()),
        user_id=user.id,
        prefix=secret[: len(KEY_PREFIX) + 8],
        label=label[:200],
        created_at=now_us(),
        last_used_at=None,
        revoked_at=None,
    )
    store.insert_key(conn, key, _hash_key(secret))
    record(
        conn, actor, "key.create", target=key.id, detail={"user": user.email, "prefix": key.prefix}
    )
    return NewKey(key, secret)


def revoke_key(conn: Connection, actor: Principal | None, key_ref: str) -> store.KeyRecord:
    """Revoke a key by id or prefix; requests with it fail from now on. Returns the key as
    revoked."""
    key = store.get_key(conn, key_ref)
    user = store.get_user(conn, key.user_id)
    if (
        actor is not None
        and actor.user_id != user.id
        and not can_administer_org(actor, user.org_id)
    ):
        raise Forbidden("you may only revoke your own keys or keys of an org you administer")
    store.revoke_key(conn, key.id, now_us())
    record(conn, actor, "key.revoke", target=key.id, detail={"user": user.email})
    return store.get_key(conn, key.id)


def identify(conn: Connection, secret: str) -> tuple[Principal, str | None]:
    """The principal an API key stands for, and the key's id if its last use should be
    recorded now (see :func:`record_use`); Unauthorized for unknown, revoked or disabled keys.

    Only reads: a caller that must not write in this transaction records the use in another.
    """
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        raise Unauthorized("unknown API key")
    found = store.find_key_with_groups(conn, _hash_key(secret))
    if found is None:
        raise Unauthorized("unknown API key")
    key, user, groups = found
    if user.disabled:
        raise Unauthorized("this user is disabled")
    stale = key.last_used_at is None or now_us() - key.last_used_at > _KEY_TOUCH_INTERVAL_US
    principal = Principal(
        user_id=user.id,
        org_id=user.org_id,
        role=Role(user.role),
        group_ids=groups,
        email=user.email,
    )
    return principal, key.id if stale else None


def record_use(conn: Connection, key_id: str) -> None:
    """Record that a key was used now."""
    store.touch_key(conn, key_id, now_us())


def authenticate(conn: Connection, secret: str) -> Principal:
    """The principal an API key stands for; Unauthorized for unknown, revoked or disabled keys."""
    principal, stale_key = identify(conn, secret)
    if stale_key is not None:
        record_use(conn, stale_key)
    return principal


def authenticate_password(conn: Connection, email: str, password: str) -> Principal:
    """HTTP Basic credentials: an API key as the password (the user name is then not used), or
    a user's email and password. Unauthorized, without saying which part was wrong."""
    if password.startswith(KEY_PREFIX):
        return authenticate(conn, password)
    try:
        user = store.get_user(conn, email.strip()) if email.strip() else None
    except NotFound:
        user = None
    if user is None:
        # The same work as a real check, so the answer's timing does not tell who exists.
        verify_password(_nobody(), password)
        raise Unauthorized("unknown user or wrong password")
    if not verify_password(user, password):
        raise Unauthorized("unknown user or wrong password")
    return principal_for(conn, user)


def create_group(
    conn: Connection,
    actor: Principal | None,
    name: str,
    owner_org_ref: str,
    member_refs: list[str],
    description: str = "",
) -> store.GroupRecord:
    """Create a sharing group owned by an org; the owner is always a member."""
    owner = store.get_org(conn, owner_org_ref)
    if actor is not None and not can_administer_org(actor, owner.id):
        raise Forbidden(f"you may not create sharing groups for {owner.name!r}")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a sharing group name must be 1 to 200 characters", field="name")
    members = {owner.id} | {store.get_org(conn, ref).id for ref in member_refs}
    group = store.GroupRecord(
        id=str(uuid.uuid4()),
        name=name,
        owner_org_id=owner.id,
        description=description,
        created_at=now_us(),
        member_org_ids=tuple(sorted(members)),
    )
    store.insert_group(conn, group)
    record(
        conn, actor, "group.create", target=group.id, detail={"name": name, "members": len(members)}
    )
    return group


def _membership_change(
    conn: Connection, actor: Principal | None, group_ref: str, org_ref: str
) -> tuple[store.GroupRecord, store.OrgRecord]:
    """The group and org of a membership change the actor may make."""
    group = store.get_group(conn, group_ref)
    if actor is not None and not can_administer_org(actor, group.owner_org_id):
        raise Forbidden(f"you may not change sharing group {group.name!r}")
    try:
        return group, store.get_org(conn, org_ref)
    except NotFound:
        raise InvalidInput(f"no organization {org_ref!r}", field="org") from None


def add_group_member(
    conn: Connection, actor: Principal | None, group_ref: str, org_ref: str
) -> store.GroupRecord:
    """Add an org to a sharing group (the group owner's admins or a node admin)."""
    group, org = _membership_change(conn, actor, group_ref, org_ref)
    store.add_group_member(conn, group.id, org.id)
    record(conn, actor, "group.member.add", target=group.id, detail={"org": org.id})
    return store.get_group(conn, group.id)


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What ``qalqan init`` creates: the node, its first org, its admin and the admin's key."""

    node: store.NodeRecord
    org: store.OrgRecord
    admin: store.UserRecord
    key: NewKey


def bootstrap(
    conn: Connection,
    data_dir: Path,
    *,
    node_name: str,
    org_name: str,
    country: str,
    admin_email: str,
    admin_password: str | None = None,
) -> Bootstrap:
    """Initialise a node: identity, first org, the official TLP markings, a node admin and key."""
    node = init_node(conn, data_dir, node_name)
    org = add_org(conn, None, org_name, country)
    owner = Principal(user_id=None, org_id=org.id, role=Role.NODE_ADMIN)
    report = import_objects(
        conn,
        owner,
        [marking_object(level) for level in TLP],
        HandlingRequest(TLP.CLEAR, Distribution.ALL),
        source="node",
    )
    if report.rejected:
        raise InvalidInput(f"TLP marking refused: {report.rejected[0].reason}")
    admin = add_user(conn, None, admin_email, org.id, Role.NODE_ADMIN, admin_password)
    key = create_key(conn, None, admin.id, "created by init")
    return Bootstrap(node, org, admin, key)


def set_org_defaults(
    conn: Connection,
    actor: Principal | None,
    org_ref: str,
    *,
    tlp: TLP | None = None,
    distribution: Distribution | None = None,
    sharing_group_ref: str | None = None,
) -> store.OrgRecord:
    """Change the handling an org's submissions get when they name none.

    What is not given stays as it was; the result must be a combination the rules allow, and a
    default sharing group must be one the org belongs to.
    """
    org = store.get_org(conn, org_ref)
    if actor is not None and not can_administer_org(actor, org.id):
        raise Forbidden(f"you may not change the settings of {org.name!r}")
    new_tlp = tlp if tlp is not None else TLP(org.default_tlp)
    new_distribution = distribution or Distribution(org.default_distribution)
    wants_group = new_distribution is Distribution.SHARING_GROUP
    group = store.resolve_sharing_group(
        conn,
        org,
        wants_group,
        (sharing_group_ref or org.default_sharing_group_id) if wants_group else sharing_group_ref,
    )
    group_id = group.id if group else None
    why = handling_problem(new_tlp, new_distribution, group_id)
    if why:
        raise InvalidInput(f"default handling refused: {why}", field="default_distribution")
    store.set_org_defaults(conn, org.id, int(new_tlp), new_distribution.value, group_id)
    record(
        conn,
        actor,
        "org.defaults",
        target=org.id,
        detail={"tlp": new_tlp.label, "distribution": new_distribution.value, "group": group_id},
    )
    return store.get_org(conn, org.id)


def remove_group_member(
    conn: Connection, actor: Principal | None, group_ref: str, org_ref: str
) -> store.GroupRecord:
    """Remove an org from a sharing group; the owner org always stays."""
    group, org = _membership_change(conn, actor, group_ref, org_ref)
    if org.id == group.owner_org_id:
        raise InvalidInput("the owner org cannot leave its own sharing group", field="org")
    store.remove_group_member(conn, group.id, org.id)
    record(conn, actor, "group.member.remove", target=group.id, detail={"org": org.id})
    return store.get_group(conn, group.id)


def users_for(conn: Connection, principal: Principal) -> list[store.UserRecord]:
    """The users a principal may list: all (node admin), its org's (org admin), or itself."""
    if can_administer_node(principal):
        return store.list_users(conn)
    found = store.list_users(conn, principal.org_id)
    if can_administer_org(principal, principal.org_id):
        return found
    return [u for u in found if u.id == principal.user_id]


def keys_for(conn: Connection, principal: Principal) -> list[store.KeyRecord]:
    """The API keys a principal may list (by the same rule as :func:`users_for`)."""
    if can_administer_node(principal):
        return store.list_keys(conn)
    return store.list_keys(conn, [u.id for u in users_for(conn, principal)])


def groups_for(conn: Connection, principal: Principal) -> list[store.GroupRecord]:
    """Sharing groups a principal may list: all (node admin), else its org's own and joined."""
    org_id = None if can_administer_node(principal) else principal.org_id
    return store.list_groups(conn, org_id)


def set_user_disabled(
    conn: Connection, actor: Principal | None, user_ref: str, disabled: bool
) -> store.UserRecord:
    """Disable or re-enable a user (its org's admins or a node admin); nobody disables
    themselves, so a node cannot lock out its last administrator by accident."""
    user = store.get_user(conn, user_ref)
    if actor is not None and not can_administer_org(actor, user.org_id):
        raise Forbidden(f"you may not change user {user.email!r}")
    if actor is not None and actor.user_id == user.id:
        raise InvalidInput("you cannot disable or enable yourself", field="user")
    if actor is not None and user.role == Role.NODE_ADMIN.value and not can_administer_node(actor):
        raise Forbidden("only a node administrator may change a node administrator")
    store.set_user_disabled(conn, user.id, disabled)
    record(conn, actor, "user.disable" if disabled else "user.enable", target=user.id)
    return store.get_user(conn, user.id)
