"""Feeds and warninglists: subscribe, change, run now, read the runs; custom warninglists."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.feed_schemas import (
    FeedCreate,
    FeedDetail,
    FeedPublic,
    FeedUpdate,
    RunPublic,
    WarninglistCheck,
    WarninglistCreate,
    WarninglistPublic,
)
from qalqan.api.problems import problem_responses
from qalqan.domain.durations import parse_duration
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import InvalidObservable, parse_value
from qalqan.errors import InvalidInput, parse_field
from qalqan.feeds import subscriptions
from qalqan.instance import Instance
from qalqan.intel import custom_warninglists

__all__ = ["router"]

router = APIRouter(responses=problem_responses(400, 401))
InstanceDep = Annotated[Instance, Depends(get_instance)]


def _seconds(field: str, text: str | None) -> int | None:
    return parse_field(field, parse_duration, text)


@router.get("/feeds", response_model=list[FeedPublic], tags=["feeds"], summary="Feeds you see")
def list_feeds(conn: DbConn, principal: CurrentPrincipal) -> list[FeedPublic]:
    """Your org's feeds (every feed for node admins); secret options are hidden."""
    return [FeedPublic.of(f) for f in subscriptions.feeds_for(conn, principal)]


@router.post(
    "/feeds",
    response_model=FeedPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["feeds"],
    summary="Subscribe to a feed (org admin or node admin)",
    responses=problem_responses(403, 404, 409),
)
def add_feed(body: FeedCreate, conn: DbConn, principal: CurrentPrincipal) -> FeedPublic:
    """The feed runs on its schedule, or when asked (`POST /feeds/{name}/runs`)."""
    expire = None if body.expire_after in (None, "never") else body.expire_after
    feed = subscriptions.add_feed(
        conn,
        principal,
        subscriptions.FeedSpec(
            name=body.name,
            source=body.source,
            url=body.url,
            owner_org=body.owner_org,
            options=body.options,
            tlp=parse_field("tlp", TLP.parse, body.tlp),
            distribution=parse_field("distribution", Distribution.parse, body.distribution),
            sharing_group=body.sharing_group,
            confidence=body.confidence,
            schedule_seconds=_seconds("schedule", body.schedule),
            expire_after_seconds=_seconds("expire_after", expire),
            on_warninglist=body.on_warninglist,
            enabled=body.enabled,
        ),
    )
    return FeedPublic.of(feed)


@router.get(
    "/feeds/{name}",
    response_model=FeedDetail,
    tags=["feeds"],
    summary="A feed and its latest runs",
    responses=problem_responses(404),
)
def show_feed(
    name: str,
    conn: DbConn,
    principal: CurrentPrincipal,
    runs: Annotated[int, Query(ge=1, le=100)] = 10,
) -> FeedDetail:
    """Settings, and per run: counts, duration, errors with line numbers."""
    feed, recent = subscriptions.runs_of(conn, principal, name, runs)
    return FeedDetail(**FeedPublic.of(feed).model_dump(), runs=[RunPublic.of(r) for r in recent])


@router.patch(
    "/feeds/{name}",
    response_model=FeedPublic,
    tags=["feeds"],
    summary="Change a feed, enable or disable it",
    responses=problem_responses(403, 404),
)
def change_feed(
    name: str, body: FeedUpdate, conn: DbConn, principal: CurrentPrincipal
) -> FeedPublic:
    """Only the fields sent change."""
    changes = subscriptions.FeedChanges(
        url=body.url,
        options=body.options,
        tlp=parse_field("tlp", TLP.parse, body.tlp),
        distribution=parse_field("distribution", Distribution.parse, body.distribution),
        sharing_group=body.sharing_group,
        confidence=body.confidence,
        schedule_seconds=None if body.schedule == "off" else _seconds("schedule", body.schedule),
        expire_after_seconds=(
            None if body.expire_after == "never" else _seconds("expire_after", body.expire_after)
        ),
        on_warninglist=body.on_warninglist,
        enabled=body.enabled,
        clear_schedule=body.schedule == "off",
        clear_expiry=body.expire_after == "never",
    )
    return FeedPublic.of(subscriptions.change_feed(conn, principal, name, changes))


@router.delete(
    "/feeds/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["feeds"],
    summary="Unsubscribe (the stored indicators stay)",
    responses=problem_responses(403, 404),
)
def remove_feed(name: str, conn: DbConn, principal: CurrentPrincipal) -> Response:
    """Removes the feed, its runs and its value list."""
    subscriptions.remove_feed(conn, principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/feeds/{name}/runs",
    response_model=dict[str, Any],
    tags=["feeds"],
    summary="Run a feed now and wait for the result",
    responses=problem_responses(404, 409),
)
def run_feed(name: str, instance: InstanceDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Counts of new / updated / unchanged / expired / warninglisted / rejected values, and the
    first rejects with their line numbers. 409 while the feed is running elsewhere."""
    index = custom_warninglists.index_for(instance)
    report = subscriptions.run_now(instance, principal, name, index, trigger="api")
    return report.to_dict()


@router.get(
    "/feeds/{name}/runs",
    response_model=list[RunPublic],
    tags=["feeds"],
    summary="A feed's latest runs",
    responses=problem_responses(404),
)
def list_runs(
    name: str,
    conn: DbConn,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[RunPublic]:
    """Newest first."""
    _, recent = subscriptions.runs_of(conn, principal, name, limit)
    return [RunPublic.of(r) for r in recent]


@router.get(
    "/warninglists",
    response_model=list[WarninglistPublic],
    tags=["warninglists"],
    summary="The node's custom warninglists",
)
def list_warninglists(conn: DbConn, principal: CurrentPrincipal) -> list[WarninglistPublic]:
    """MISP's lists are always checked too; these are the node's own."""
    return [WarninglistPublic.of(w) for w in custom_warninglists.lists(conn)]


@router.post(
    "/warninglists",
    response_model=WarninglistPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["warninglists"],
    summary="Add a custom warninglist (node admin)",
    responses=problem_responses(403, 409),
)
def add_warninglist(
    body: WarninglistCreate, conn: DbConn, principal: CurrentPrincipal
) -> WarninglistPublic:
    """In MISP's format; feeds flag (or drop) values on it from their next run."""
    wl = custom_warninglists.add_list(conn, principal, body.model_dump(by_alias=True))
    return WarninglistPublic.of(wl)


@router.delete(
    "/warninglists/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["warninglists"],
    summary="Remove a custom warninglist (node admin)",
    responses=problem_responses(403, 404),
)
def remove_warninglist(name: str, conn: DbConn, principal: CurrentPrincipal) -> Response:
    """MISP's own lists cannot be removed."""
    custom_warninglists.remove_list(conn, principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/warninglists/check",
    response_model=WarninglistCheck,
    tags=["warninglists"],
    summary="Is a value on a warninglist?",
)
def check_warninglist(
    instance: InstanceDep,
    principal: CurrentPrincipal,
    value: Annotated[str, Query(min_length=1, max_length=10_000)],
) -> WarninglistCheck:
    """The first list holding the value (kind detected), and why."""
    try:
        o = parse_value(value)
    except InvalidObservable as exc:
        raise InvalidInput(str(exc), field="value") from None
    hit = custom_warninglists.index_for(instance).check(o.kind, o.value)
    return WarninglistCheck(
        value=o.value,
        kind=o.kind,
        list=hit.list_name if hit else None,
        reason=hit.reason if hit else None,
    )
