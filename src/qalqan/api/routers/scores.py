"""REST: the confidence scores of indicators, as they decay, are sighted and reported."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from qalqan.api.deps import CurrentPrincipal, DbConn, get_instance
from qalqan.api.problems import problem_responses
from qalqan.api.score_schemas import ScoreItem, ScorePage
from qalqan.instance import Instance
from qalqan.intel import scoring
from qalqan.store.clock import now_us
from qalqan.store.scores import ScoreFilter

__all__ = ["router"]

router = APIRouter(tags=["scores"], responses=problem_responses(400, 401))

CurrentInstance = Annotated[Instance, Depends(get_instance)]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/indicators/{stix_id}/score",
    response_model=ScoreItem,
    summary="The confidence score of an indicator, now",
    responses=problem_responses(404),
)
def get_score(
    conn: DbConn, principal: CurrentPrincipal, instance: CurrentInstance, stix_id: str
) -> Response:
    """404 when the indicator does not exist, you may not see it, or it has no score yet."""
    view = scoring.score_of(
        conn,
        principal,
        stix_id,
        now=now_us(),
        config=scoring.config_from(instance.settings),
    )
    return _json(ScoreItem.of(view))


@router.get("/scores", response_model=ScorePage, summary="List indicators by score")
def list_scores(
    conn: DbConn,
    principal: CurrentPrincipal,
    instance: CurrentInstance,
    min_score: Annotated[
        int | None, Query(alias="min", ge=0, le=100, description="lowest stored score")
    ] = None,
    max_score: Annotated[
        int | None, Query(alias="max", ge=0, le=100, description="highest stored score")
    ] = None,
    kind: Annotated[
        list[str] | None, Query(description="ip, cidr, domain, url, email, md5, ..., other")
    ] = None,
    detection: Annotated[
        bool | None, Query(description="true: only those in detection now; false: the others")
    ] = None,
    sort: Annotated[Literal["score", "-score"], Query(description="-score: highest first")] = (
        "-score"
    ),
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The latest indicators you may see, by the score stored at the last refresh (then by
    id); pass ``next`` back as ``cursor`` for the following page."""
    page = scoring.list_scores(
        conn,
        principal,
        ScoreFilter(
            min_score=min_score,
            max_score=max_score,
            kinds=kind,
            detection=detection,
            descending=sort == "-score",
        ),
        cursor,
        limit,
        now=now_us(),
        config=scoring.config_from(instance.settings),
    )
    return _json({"items": [ScoreItem.of(v) for v in page.items], "next": page.next_cursor})
