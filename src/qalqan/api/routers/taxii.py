"""Administration of the TAXII server's collections (node admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from qalqan.api.deps import CurrentPrincipal, DbConn
from qalqan.api.problems import problem_responses
from qalqan.domain.handling import TLP
from qalqan.errors import parse_field
from qalqan.interop.taxii.collections import add_collection, list_stored, remove_collection

__all__ = ["router"]

router = APIRouter(tags=["taxii"], responses=problem_responses(400, 401, 403))


class CollectionCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    alias: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=2000)
    types: list[str] | None = Field(default=None, max_length=100, description="STIX types")
    max_tlp: str | None = Field(default=None, description="TLP ceiling, e.g. green")
    sharing_group: str | None = Field(default=None, description="Sharing group id or name")
    writable: bool = Field(default=False, description="May writers add objects?")


class CollectionPublic(BaseModel):
    id: str
    alias: str | None
    title: str
    description: str
    types: list[str] | None
    max_tlp: str | None
    sharing_group: str | None
    writable: bool
    kind: str


@router.get(
    "/taxii/collections",
    response_model=list[CollectionPublic],
    summary="Stored TAXII collections (node admin)",
)
def list_collections(conn: DbConn, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Every sharing group also has a collection of its own, shown to its members."""
    return [c.to_dict() for c in list_stored(conn, principal)]


@router.post(
    "/taxii/collections",
    response_model=CollectionPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Define a TAXII collection (node admin)",
    responses=problem_responses(404, 409),
)
def create_collection(
    body: CollectionCreate, conn: DbConn, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A collection narrows what each org may see; it never widens it."""
    found = add_collection(
        conn,
        principal,
        body.title,
        alias=body.alias,
        description=body.description,
        types=body.types,
        max_tlp=parse_field("max_tlp", TLP.parse, body.max_tlp),
        sharing_group=body.sharing_group,
        writable=body.writable,
    )
    return found.to_dict()


@router.delete(
    "/taxii/collections/{collection}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a TAXII collection (node admin)",
    responses=problem_responses(404),
)
def delete_collection(collection: str, conn: DbConn, principal: CurrentPrincipal) -> Response:
    """The objects it showed stay."""
    remove_collection(conn, principal, collection)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
