"""SQL for the node, orgs, users, API keys and sharing groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Executable, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from qalqan.errors import Conflict, InvalidInput, NotFound, QalqanError
from qalqan.store.tables import (
    api_keys,
    nodes,
    orgs,
    sharing_group_members,
    sharing_groups,
    users,
)

__all__ = [
    "GroupRecord",
    "KeyRecord",
    "NodeRecord",
    "OrgRecord",
    "UserRecord",
    "add_group_member",
    "find_key_by_hash",
    "find_key_with_groups",
    "get_group",
    "get_key",
    "get_org",
    "get_user",
    "group_ids_of_org",
    "group_member_ids",
    "insert_group",
    "insert_key",
    "insert_node",
    "insert_org",
    "insert_user",
    "list_groups",
    "list_keys",
    "list_orgs",
    "list_users",
    "local_node",
    "remove_group_member",
    "resolve_sharing_group",
    "revoke_key",
    "set_org_defaults",
    "set_user_disabled",
    "touch_key",
]


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: str
    name: str
    public_key: str
    created_at: int


@dataclass(frozen=True, slots=True)
class OrgRecord:
    id: str
    name: str
    country: str
    node_id: str
    identity_id: str
    default_tlp: int
    default_distribution: str
    default_sharing_group_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    org_id: str
    role: str
    password_hash: str | None
    disabled: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    user_id: str
    prefix: str
    label: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    name: str
    owner_org_id: str
    description: str
    created_at: int
    member_org_ids: tuple[str, ...]


def _insert(conn: Connection, stmt: Executable, what: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except IntegrityError as exc:
        raise Conflict(f"{what} already exists") from exc


def insert_node(conn: Connection, node: NodeRecord, *, is_local: bool) -> None:
    """Store a node; the local one carries the ``date_added`` clock."""
    _insert(
        conn,
        insert(nodes).values(
            id=node.id,
            name=node.name,
            public_key=node.public_key,
            is_local=is_local,
            clock=0,
            created_at=node.created_at,
        ),
        f"node {node.name!r}",
    )


def local_node(conn: Connection) -> NodeRecord | None:
    """This node, or None before ``qalqan init``."""
    row = conn.execute(
        select(nodes.c.id, nodes.c.name, nodes.c.public_key, nodes.c.created_at).where(
            nodes.c.is_local
        )
    ).first()
    return NodeRecord(*row) if row else None


_ORG_COLUMNS = (
    orgs.c.id,
    orgs.c.name,
    orgs.c.country,
    orgs.c.node_id,
    orgs.c.identity_id,
    orgs.c.default_tlp,
    orgs.c.default_distribution,
    orgs.c.default_sharing_group_id,
    orgs.c.created_at,
)


def insert_org(conn: Connection, org: OrgRecord) -> None:
    """Store an org; Conflict if its name or identity is taken."""
    values = {c.name: getattr(org, c.name) for c in _ORG_COLUMNS}
    _insert(conn, insert(orgs).values(**values), f"organization {org.name!r}")


def get_org(conn: Connection, ref: str) -> OrgRecord:
    """The org whose id, name or STIX identity id is ``ref``; NotFound otherwise."""
    row = conn.execute(
        select(*_ORG_COLUMNS).where(
            or_(orgs.c.id == ref, orgs.c.name == ref, orgs.c.identity_id == ref)
        )
    ).first()
    if row is None:
        raise NotFound(f"no organization {ref!r}")
    return OrgRecord(*row)


def list_orgs(conn: Connection) -> list[OrgRecord]:
    """Every org of the node, by name."""
    return [OrgRecord(*r) for r in conn.execute(select(*_ORG_COLUMNS).order_by(orgs.c.name))]


def set_org_defaults(
    conn: Connection, org_id: str, tlp: int, distribution: str, group_id: str | None
) -> None:
    """Change the handling an org's submissions get when they name none."""
    conn.execute(
        update(orgs)
        .where(orgs.c.id == org_id)
        .values(
            default_tlp=tlp, default_distribution=distribution, default_sharing_group_id=group_id
        )
    )


_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.org_id,
    users.c.role,
    users.c.password_hash,
    users.c.disabled,
    users.c.created_at,
)


def insert_user(conn: Connection, user: UserRecord) -> None:
    """Store a user; Conflict if the email is taken."""
    values = {c.name: getattr(user, c.name) for c in _USER_COLUMNS}
    _insert(conn, insert(users).values(**values), f"user {user.email!r}")


def set_user_disabled(conn: Connection, user_id: str, disabled: bool) -> None:
    """Disable (or re-enable) a user: a disabled user's keys and password are refused."""
    conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))


def get_user(conn: Connection, ref: str) -> UserRecord:
    """The user whose id or email is ``ref``; NotFound otherwise."""
    row = conn.execute(
        select(*_USER_COLUMNS).where(or_(users.c.id == ref, users.c.email == ref.lower()))
    ).first()
    if row is None:
        raise NotFound(f"no user {ref!r}")
    return UserRecord(*row)


def list_users(conn: Connection, org_id: str | None = None) -> list[UserRecord]:
    """Users of one org, or of the node, by email."""
    stmt = select(*_USER_COLUMNS).order_by(users.c.email)
    if org_id is not None:
        stmt = stmt.where(users.c.org_id == org_id)
    return [UserRecord(*r) for r in conn.execute(stmt)]


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.user_id,
    api_keys.c.prefix,
    api_keys.c.label,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def insert_key(conn: Connection, key: KeyRecord, key_hash: str) -> None:
    """Store an API key by its hash; the key itself is never stored."""
    values = {c.name: getattr(key, c.name) for c in _KEY_COLUMNS}
    _insert(conn, insert(api_keys).values(key_hash=key_hash, **values), "API key")


def find_key_by_hash(conn: Connection, key_hash: str) -> tuple[KeyRecord, UserRecord] | None:
    """The live key with this hash and its user, or None (unknown or revoked key)."""
    row = conn.execute(
        select(*_KEY_COLUMNS, *_USER_COLUMNS)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    n = len(_KEY_COLUMNS)
    return KeyRecord(*row[:n]), UserRecord(*row[n:])


def find_key_with_groups(
    conn: Connection, key_hash: str
) -> tuple[KeyRecord, UserRecord, frozenset[str]] | None:
    """As :func:`find_key_by_hash`, with :func:`group_ids_of_org` of the user's org, in one
    query (every API request asks this)."""
    members = (
        select(func.aggregate_strings(sharing_group_members.c.group_id, ","))
        .where(sharing_group_members.c.org_id == users.c.org_id)
        .scalar_subquery()
    )
    owned = (
        select(func.aggregate_strings(sharing_groups.c.id, ","))
        .where(sharing_groups.c.owner_org_id == users.c.org_id)
        .scalar_subquery()
    )
    row = conn.execute(
        select(*_KEY_COLUMNS, *_USER_COLUMNS, members, owned)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    n, m = len(_KEY_COLUMNS), len(_KEY_COLUMNS) + len(_USER_COLUMNS)
    groups = frozenset(g for part in row[m:] if part for g in part.split(","))
    return KeyRecord(*row[:n]), UserRecord(*row[n:m]), groups


def touch_key(conn: Connection, key_id: str, at: int) -> None:
    """Record when a key was last used."""
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at))


def list_keys(conn: Connection, user_ids: Sequence[str] | None = None) -> list[KeyRecord]:
    """Keys of the given users (all keys if None), newest first."""
    stmt = select(*_KEY_COLUMNS).order_by(api_keys.c.created_at.desc())
    if user_ids is not None:
        stmt = stmt.where(api_keys.c.user_id.in_(list(user_ids)))
    return [KeyRecord(*r) for r in conn.execute(stmt)]


def get_key(conn: Connection, key_id: str) -> KeyRecord:
    """The key with this id (or id prefix of at least 8 characters); NotFound otherwise."""
    stmt = select(*_KEY_COLUMNS).where(or_(api_keys.c.id == key_id, api_keys.c.prefix == key_id))
    rows = conn.execute(stmt).all()
    if len(rows) != 1:
        raise NotFound(f"no API key {key_id!r}")
    return KeyRecord(*rows[0])


def revoke_key(conn: Connection, key_id: str, at: int) -> None:
    """Revoke a key; later requests with it are refused."""
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def insert_group(conn: Connection, group: GroupRecord) -> None:
    """Store a sharing group and its members."""
    _insert(
        conn,
        insert(sharing_groups).values(
            id=group.id,
            name=group.name,
            owner_org_id=group.owner_org_id,
            description=group.description,
            created_at=group.created_at,
        ),
        f"sharing group {group.name!r}",
    )
    for org_id in group.member_org_ids:
        add_group_member(conn, group.id, org_id)


def add_group_member(conn: Connection, group_id: str, org_id: str) -> None:
    """Add an org to a group (no-op if already a member)."""
    exists = conn.execute(
        select(sharing_group_members.c.org_id).where(
            sharing_group_members.c.group_id == group_id, sharing_group_members.c.org_id == org_id
        )
    ).first()
    if exists is None:
        conn.execute(insert(sharing_group_members).values(group_id=group_id, org_id=org_id))


def remove_group_member(conn: Connection, group_id: str, org_id: str) -> None:
    """Remove an org from a group."""
    conn.execute(
        delete(sharing_group_members).where(
            sharing_group_members.c.group_id == group_id, sharing_group_members.c.org_id == org_id
        )
    )


def group_member_ids(conn: Connection, group_id: str) -> tuple[str, ...]:
    """The member orgs of a group."""
    return tuple(
        conn.execute(
            select(sharing_group_members.c.org_id)
            .where(sharing_group_members.c.group_id == group_id)
            .order_by(sharing_group_members.c.org_id)
        ).scalars()
    )


_GROUP_COLUMNS = (
    sharing_groups.c.id,
    sharing_groups.c.name,
    sharing_groups.c.owner_org_id,
    sharing_groups.c.description,
    sharing_groups.c.created_at,
)


def get_group(conn: Connection, ref: str) -> GroupRecord:
    """The group whose id or name is ``ref``; NotFound otherwise."""
    row = conn.execute(
        select(*_GROUP_COLUMNS).where(or_(sharing_groups.c.id == ref, sharing_groups.c.name == ref))
    ).first()
    if row is None:
        raise NotFound(f"no sharing group {ref!r}")
    return GroupRecord(*row, member_org_ids=group_member_ids(conn, row[0]))


def list_groups(conn: Connection, org_id: str | None = None) -> list[GroupRecord]:
    """Groups (those an org owns or belongs to, if ``org_id`` is given), by name."""
    stmt = select(*_GROUP_COLUMNS).order_by(sharing_groups.c.name)
    if org_id is not None:
        stmt = stmt.where(
            or_(
                sharing_groups.c.owner_org_id == org_id,
                sharing_groups.c.id.in_(
                    select(sharing_group_members.c.group_id).where(
                        sharing_group_members.c.org_id == org_id
                    )
                ),
            )
        )
    members: dict[str, list[str]] = {}
    for gid, oid in conn.execute(
        select(sharing_group_members.c.group_id, sharing_group_members.c.org_id)
    ):
        members.setdefault(gid, []).append(oid)
    return [
        GroupRecord(*r, member_org_ids=tuple(sorted(members.get(r[0], ()))))
        for r in conn.execute(stmt)
    ]


def group_ids_of_org(conn: Connection, org_id: str) -> frozenset[str]:
    """The sharing groups whose objects the org receives: those it belongs to or owns."""
    member = select(sharing_group_members.c.group_id).where(
        sharing_group_members.c.org_id == org_id
    )
    owned = select(sharing_groups.c.id).where(sharing_groups.c.owner_org_id == org_id)
    return frozenset(conn.execute(member.union(owned)).scalars())


def resolve_sharing_group(
    conn: Connection,
    org: OrgRecord,
    wants_group: bool,
    ref: str | None,
    *,
    not_member: type[QalqanError] = InvalidInput,
) -> GroupRecord | None:
    """The sharing group ``ref`` names for ``org``'s intelligence when the distribution is
    ``sharing_group`` (``wants_group``), None otherwise.

    InvalidInput (field ``sharing_group``) when a group is needed and none is named or one is
    named for another distribution, NotFound for an unknown group, ``not_member`` when the org
    neither owns the group nor belongs to it.
    """
    if not wants_group:
        if ref:
            raise InvalidInput(
                "a sharing group is only used with distribution sharing_group",
                field="sharing_group",
            )
        return None
    if ref is None:
        raise InvalidInput(
            "distribution sharing_group needs a sharing group", field="sharing_group"
        )
    group = get_group(conn, ref)
    if org.id != group.owner_org_id and org.id not in group.member_org_ids:
        raise not_member(
            f"organization {org.name!r} is not a member of sharing group {group.name!r}",
            field="sharing_group",
        )
    return group
