"""``stix``: a STIX 2.1 bundle of the latest versions the org may see, objects byte for byte
as stored, streamed whatever their number."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from qalqan.interop.exports.base import MAIN, Chunk, ExportFormat, RenderContext, Source

__all__ = ["FORMAT", "StixFormat"]


class StixFormat(ExportFormat):
    name = "stix"
    description = "STIX 2.1 bundle of every object you may see (filters: type, TLP, ...)"
    media_type = "application/stix+json;version=2.1"
    suffix = ".json"
    kinds = None

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        batches = source.versions()
        # The first query runs before the first byte, so a filter the database refuses fails
        # the request instead of cutting a bundle off midway.
        first = next(batches, None)
        yield MAIN, f'{{"type":"bundle","id":"bundle--{uuid.uuid4()}","objects":['.encode()
        separator = b""
        while first is not None:
            yield MAIN, separator + b",".join(content.encode() for _, content in first)
            separator = b","
            first = next(batches, None)
        yield MAIN, b"]}"


FORMAT = StixFormat()
