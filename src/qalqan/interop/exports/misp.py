"""``misp``: one MISP event (``{"Event": {...}}``) holding every value as an attribute with
``to_ids`` set, its TLP as a tag and the indicator's name as comment; it loads in PyMISP
(``MISPEvent().load(...)``) and imports into a MISP instance.

PyMISP builds the event and one attribute per (MISP type, TLP), which fixes type, category
and tags; each value then copies its template, so a million values do not cost a million
PyMISP objects. Attribute uuids derive from the indicator and value, so they are the same in
every export.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from qalqan.domain.handling import TLP
from qalqan.interop.exports.base import (
    KIND,
    MAIN,
    NAME,
    STIX_ID,
    TLP_LEVEL,
    VALUE,
    Chunk,
    ExportFormat,
    RenderContext,
    Source,
    one_line,
)

__all__ = ["FORMAT", "MISP_TYPES", "MispFormat"]

MISP_TYPES = {
    "ip": "ip-dst",
    "cidr": "ip-dst",
    "domain": "domain",
    "url": "url",
    "email": "email",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha512": "sha512",
}
_UUIDS = uuid.UUID("1f6c3b0e-5d8a-4c3e-9a51-6a2f0c7e4b19")


def _tag(level: TLP) -> str:
    return f"tlp:{level.label.lower()}"


def _template(kind: str, tlp: int) -> dict[str, Any]:
    from pymisp import MISPAttribute  # seconds to import: only when this format runs

    attribute = MISPAttribute()
    attribute.from_dict(type=MISP_TYPES[kind], value="-", to_ids=True)
    attribute.add_tag(_tag(TLP(tlp)))
    template: dict[str, Any] = orjson.loads(attribute.to_json())
    for key in ("value", "uuid", "comment"):
        template.pop(key, None)
    return template


def _event_head(ctx: RenderContext) -> bytes:
    from pymisp import MISPEvent  # seconds to import: only when this format runs

    event = MISPEvent()
    moment = datetime.fromtimestamp(ctx.generated / 1_000_000, UTC)
    event.uuid = str(uuid.uuid5(_UUIDS, f"{ctx.org}|{ctx.generated}"))
    event.info = one_line(f"Qalqan export of {ctx.org}, up to TLP:{ctx.ceiling.label}", 250)
    event.date = moment.date()
    event.distribution = 0  # the receiving MISP's own organisation until someone widens it
    event.threat_level_id = 4
    event.analysis = 2
    event.add_tag(_tag(ctx.ceiling))
    body: dict[str, Any] = orjson.loads(event.to_json())
    body.pop("Attribute", None)
    head = orjson.dumps({"Event": body})
    # Reopen the event object to append the attribute list: {"Event":{...,"Attribute":[
    return head[:-2] + b',"Attribute":['


class MispFormat(ExportFormat):
    name = "misp"
    description = "one MISP event (JSON) with an IDS attribute per value"
    media_type = "application/json"
    suffix = ".json"
    kinds = tuple(MISP_TYPES)

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        yield MAIN, _event_head(ctx)
        templates: dict[tuple[str, int], dict[str, Any]] = {}
        separator = b""
        for batch in source.indicators():
            attributes = []
            for item in batch:
                kind, tlp = item[KIND], item[TLP_LEVEL]
                template = templates.get((kind, tlp))
                if template is None:
                    template = templates[kind, tlp] = _template(kind, tlp)
                attribute = dict(template)
                attribute["uuid"] = str(uuid.uuid5(_UUIDS, f"{item[STIX_ID]}|{kind}|{item[VALUE]}"))
                attribute["value"] = item[VALUE]
                comment = one_line(item[NAME], 1000)
                if comment:
                    attribute["comment"] = comment
                attributes.append(orjson.dumps(attribute))
            if attributes:
                yield MAIN, separator + b",".join(attributes)
                separator = b","
        yield MAIN, b"]}}"


FORMAT = MispFormat()
