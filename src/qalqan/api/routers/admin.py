"""Administration: orgs, users, API keys, sharing groups, and who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from qalqan import accounts
from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.api.schemas import (
    GroupCreate,
    GroupPublic,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    MemberAdd,
    OrgCreate,
    OrgPublic,
    OrgUpdate,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.errors import InvalidInput, parse_field
from qalqan.store import accounts as store

__all__ = ["router"]

router = APIRouter(tags=["administration"], responses=problem_responses(400, 401))


@router.get("/me", summary="The caller: user, org and role")
def me(conn: DbConn, principal: CurrentPrincipal) -> dict[str, Any]:
    """Who the API key belongs to."""
    org = store.get_org(conn, principal.org_id)
    return {
        "user_id": principal.user_id,
        "email": principal.email,
        "role": principal.role.value,
        "org": OrgPublic.of(org).model_dump(),
        "sharing_groups": sorted(principal.group_ids),
    }


@router.get("/orgs", response_model=list[OrgPublic], summary="Organizations of this node")
def list_orgs(conn: DbConn, principal: CurrentPrincipal) -> list[OrgPublic]:
    """Every org of the node (names and countries are known to all members)."""
    return [OrgPublic.of(o) for o in store.list_orgs(conn)]


@router.post(
    "/orgs",
    response_model=OrgPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add an organization (node admin)",
    responses=problem_responses(403, 409),
)
def add_org(body: OrgCreate, conn: DbConn, principal: CurrentPrincipal) -> OrgPublic:
    """Creates the org and its STIX identity."""
    org = accounts.add_org(
        conn,
        principal,
        body.name,
        body.country,
        default_tlp=parse_field("default_tlp", TLP.parse, body.default_tlp),
        default_distribution=parse_field(
            "default_distribution", Distribution.parse, body.default_distribution
        ),
    )
    return OrgPublic.of(org)


@router.patch(
    "/orgs/{org_id}",
    response_model=OrgPublic,
    summary="Change an org's default handling (its org admin or a node admin)",
    responses=problem_responses(403, 404),
)
def update_org(
    org_id: str, body: OrgUpdate, conn: DbConn, principal: CurrentPrincipal
) -> OrgPublic:
    """Submissions that name no TLP or distribution get these."""
    org = accounts.set_org_defaults(
        conn,
        principal,
        org_id,
        tlp=parse_field("default_tlp", TLP.parse, body.default_tlp),
        distribution=parse_field(
            "default_distribution", Distribution.parse, body.default_distribution
        ),
        sharing_group_ref=body.default_sharing_group,
    )
    return OrgPublic.of(org)


@router.get("/users", response_model=list[UserPublic], summary="Users you administer")
def list_users(conn: DbConn, principal: CurrentPrincipal) -> list[UserPublic]:
    """Node admins see every user; org admins their org's; others themselves."""
    return [UserPublic.of(u) for u in accounts.users_for(conn, principal)]


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add a user (org admin of that org, or node admin)",
    responses=problem_responses(403, 404, 409),
)
def add_user(body: UserCreate, conn: DbConn, principal: CurrentPrincipal) -> UserPublic:
    """The password, if given, is stored as an argon2id hash."""
    role = parse_field("role", Role.parse, body.role)
    user = accounts.add_user(conn, principal, body.email, body.org, role, body.password)
    return UserPublic.of(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    summary="Disable or re-enable a user (org admin of that org, or node admin)",
    responses=problem_responses(403, 404),
)
def update_user(
    user_id: str, body: UserUpdate, conn: DbConn, principal: CurrentPrincipal
) -> UserPublic:
    """A disabled user's API keys are refused until the user is enabled again."""
    return UserPublic.of(accounts.set_user_disabled(conn, principal, user_id, body.disabled))


@router.get("/keys", response_model=list[KeyPublic], summary="API keys you may manage")
def list_keys(conn: DbConn, principal: CurrentPrincipal) -> list[KeyPublic]:
    """Keys are listed by prefix; the secret itself is never shown again."""
    return [KeyPublic.of(k) for k in accounts.keys_for(conn, principal)]


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
    responses=problem_responses(403, 404),
)
def create_key(body: KeyCreate, conn: DbConn, principal: CurrentPrincipal) -> KeyCreated:
    """For yourself by default, or for a user of an org you administer."""
    user_ref = body.user or principal.user_id
    if user_ref is None:
        raise InvalidInput("name the user the key is for", field="user")
    new = accounts.create_key(conn, principal, user_ref, body.label)
    return KeyCreated(**KeyPublic.of(new.record).model_dump(), key=new.secret)


@router.delete(
    "/keys/{key_id}",
    response_model=KeyPublic,
    summary="Revoke an API key",
    responses=problem_responses(403, 404),
)
def revoke_key(key_id: str, conn: DbConn, principal: CurrentPrincipal) -> KeyPublic:
    """Requests with the key are refused from now on."""
    return KeyPublic.of(accounts.revoke_key(conn, principal, key_id))


@router.get("/sharing-groups", response_model=list[GroupPublic], summary="Sharing groups")
def list_groups(conn: DbConn, principal: CurrentPrincipal) -> list[GroupPublic]:
    """Node admins see all groups; others the groups their org owns or belongs to."""
    return [GroupPublic.of(g) for g in accounts.groups_for(conn, principal)]


@router.post(
    "/sharing-groups",
    response_model=GroupPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create a sharing group",
    responses=problem_responses(403, 404, 409),
)
def create_group(body: GroupCreate, conn: DbConn, principal: CurrentPrincipal) -> GroupPublic:
    """The owner org (yours by default) is always a member."""
    group = accounts.create_group(
        conn,
        principal,
        body.name,
        body.owner_org or principal.org_id,
        body.members,
        body.description,
    )
    return GroupPublic.of(group)


@router.post(
    "/sharing-groups/{group_id}/members",
    response_model=GroupPublic,
    summary="Add an org to a sharing group",
    responses=problem_responses(403, 404),
)
def add_member(
    group_id: str, body: MemberAdd, conn: DbConn, principal: CurrentPrincipal
) -> GroupPublic:
    """Only the group owner's admins and node admins may change members."""
    return GroupPublic.of(accounts.add_group_member(conn, principal, group_id, body.org))


@router.delete(
    "/sharing-groups/{group_id}/members/{org_id}",
    response_model=GroupPublic,
    summary="Remove an org from a sharing group",
    responses=problem_responses(403, 404),
)
def remove_member(
    group_id: str, org_id: str, conn: DbConn, principal: CurrentPrincipal
) -> GroupPublic:
    """The owner org stays; objects already shared with the group stay with the group."""
    return GroupPublic.of(accounts.remove_group_member(conn, principal, group_id, org_id))
