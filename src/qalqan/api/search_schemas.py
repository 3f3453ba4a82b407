"""Response schemas of search (documentation of the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qalqan.api.schemas import HandlingPublic

__all__ = [
    "FacetOrg",
    "FacetValue",
    "SearchFacets",
    "SearchItem",
    "SearchMatched",
    "SearchPage",
    "SearchQuery",
]


class SearchQuery(BaseModel):
    q: str = Field(description="the query as searched (control characters become spaces)")
    mode: str = Field(description="exact, cidr, suffix, prefix or text")
    kind: str | None = Field(description="the observable kind of an exact or cidr search")
    value: str | None = Field(description="the normalized value, network, domain or prefix")
    terms: list[str] | None = Field(description="the words of a text search")


class SearchMatched(BaseModel):
    kind: str = Field(description="ip, cidr, domain, url, email, md5, sha1, sha256, sha512")
    value: str = Field(description="the indexed value that matched")


class SearchItem(BaseModel):
    id: str
    type: str
    name: str | None
    handling: HandlingPublic
    matched: SearchMatched | None = Field(description="value searches: the entry that matched")
    score: int | None = Field(description="an indicator's current score, 0-100, if scored")


class FacetValue(BaseModel):
    value: str
    count: int


class FacetOrg(BaseModel):
    id: str
    name: str
    country: str
    count: int


class SearchFacets(BaseModel):
    exact: bool = Field(description="false: counted over the first `cap` matches of a range")
    cap: int
    objects: int = Field(description="distinct objects counted")
    type: list[FacetValue]
    org: list[FacetOrg]
    country: list[FacetValue]
    tlp: list[FacetValue]
    label: list[FacetValue] = Field(description="the most frequent labels")
    score: list[FacetValue] = Field(description="bands: low <30, medium 30-69, high >=70, none")


class SearchPage(BaseModel):
    query: SearchQuery
    items: list[SearchItem]
    facets: SearchFacets | None = Field(description="with `facets=true`")
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")
