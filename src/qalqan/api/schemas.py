"""Request and response shapes of the REST API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from qalqan.domain.handling import TLP
from qalqan.domain.stix import format_timestamp
from qalqan.store.accounts import GroupRecord, KeyRecord, OrgRecord, UserRecord

__all__ = [
    "GroupCreate",
    "GroupPublic",
    "HandlingPublic",
    "ImportResult",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "MemberAdd",
    "ObjectItem",
    "ObjectPage",
    "ObjectVersions",
    "ObservablePage",
    "OrgCreate",
    "OrgPublic",
    "OrgUpdate",
    "UserCreate",
    "UserPublic",
    "UserUpdate",
]


def _time(micros: int | None) -> str | None:
    return format_timestamp(micros) if micros is not None else None


class OrgCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    default_tlp: str = "amber"
    default_distribution: str = "node"


class OrgUpdate(BaseModel):
    default_tlp: str | None = None
    default_distribution: str | None = None
    default_sharing_group: str | None = Field(default=None, description="group id or name")


class OrgPublic(BaseModel):
    id: str
    name: str
    country: str
    identity_id: str
    default_tlp: str
    default_distribution: str
    default_sharing_group: str | None
    created: str

    @classmethod
    def of(cls, org: OrgRecord) -> OrgPublic:
        return cls(
            id=org.id,
            name=org.name,
            country=org.country,
            identity_id=org.identity_id,
            default_tlp=TLP(org.default_tlp).label,
            default_distribution=org.default_distribution,
            default_sharing_group=org.default_sharing_group_id,
            created=format_timestamp(org.created_at),
        )


class UserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    org: str = Field(description="org id or name")
    role: str = "analyst"
    password: str | None = Field(default=None, min_length=12, max_length=1000)


class UserUpdate(BaseModel):
    disabled: bool


class UserPublic(BaseModel):
    id: str
    email: str
    org_id: str
    role: str
    disabled: bool
    created: str

    @classmethod
    def of(cls, user: UserRecord) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            org_id=user.org_id,
            role=user.role,
            disabled=user.disabled,
            created=format_timestamp(user.created_at),
        )


class KeyCreate(BaseModel):
    user: str | None = Field(default=None, description="user id or email; default: yourself")
    label: str = Field(default="", max_length=200)


class KeyPublic(BaseModel):
    id: str
    user_id: str
    prefix: str
    label: str
    created: str
    last_used: str | None
    revoked: str | None

    @classmethod
    def of(cls, key: KeyRecord) -> KeyPublic:
        return cls(
            id=key.id,
            user_id=key.user_id,
            prefix=key.prefix,
            label=key.label,
            created=format_timestamp(key.created_at),
            last_used=_time(key.last_used_at),
            revoked=_time(key.revoked_at),
        )


class KeyCreated(KeyPublic):
    key: str = Field(description="the API key itself; shown once, never again")


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    owner_org: str | None = Field(default=None, description="default: your org")
    members: list[str] = Field(default_factory=list, description="org ids or names")
    description: str = Field(default="", max_length=10_000)


class MemberAdd(BaseModel):
    org: str


class GroupPublic(BaseModel):
    id: str
    name: str
    owner_org_id: str
    description: str
    member_org_ids: list[str]
    created: str

    @classmethod
    def of(cls, group: GroupRecord) -> GroupPublic:
        return cls(
            id=group.id,
            name=group.name,
            owner_org_id=group.owner_org_id,
            description=group.description,
            member_org_ids=list(group.member_org_ids),
            created=format_timestamp(group.created_at),
        )


class ImportResult(BaseModel):
    accepted: int
    created: int
    unchanged: int
    rejected: int
    objects: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class OrgRef(BaseModel):
    id: str
    name: str
    country: str


class HandlingPublic(BaseModel):
    owner_org: OrgRef
    tlp: str = Field(description="CLEAR, GREEN, AMBER, AMBER+STRICT or RED")
    distribution: str = Field(description="organization, node, connected, all or sharing_group")
    sharing_group: str | None
    date_added: str = Field(description="when this node stored the version (the page order)")
    revoked: bool = Field(description="the object's creator revoked it")
    withdrawn: bool = Field(description="its owner withdrew it from this node")


class ObjectItem(BaseModel):
    id: str
    type: str
    handling: HandlingPublic
    object: dict[str, Any] = Field(description="the STIX 2.1 object, exactly as stored")


class ObjectPage(BaseModel):
    items: list[ObjectItem]
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class ObjectVersions(BaseModel):
    id: str
    versions: list[ObjectItem]


class ObservableQuery(BaseModel):
    kind: str
    value: str = Field(description="the value as normalized for the lookup")


class ObservableItem(ObjectItem):
    kind: str
    value: str


class ObservablePage(BaseModel):
    query: ObservableQuery
    items: list[ObservableItem]
    next: str | None
