"""Suricata's eve.json: JSON lines with ``event_type``, ``timestamp``, ``src_ip``, ...

Read by the JSON-lines machinery; what this module adds is knowing where Suricata puts the
observables an IOC sweep looks for, across eve versions (DNS names moved from ``dns.rrname`` to
``dns.queries`` lists in version 3 of its DNS records), and ``@url`` for HTTP records, which
log the host and the path apart.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar

import polars as pl

from qalqan.detect.readers._base import register, with_url
from qalqan.detect.readers.jsonl import JsonLinesReader, first_json_object

__all__ = ["EveReader"]


@register
class EveReader(JsonLinesReader):
    """Suricata eve.json records; ``@time`` from ``timestamp``."""

    name = "eve"
    description = "Suricata eve.json (alerts, flows, dns, http, tls, fileinfo, smtp, ...)"
    sniff_order = 40
    time_fields: ClassVar[tuple[str, ...]] = ("timestamp",)
    default_fields = MappingProxyType(
        {
            "src_ip": "ip",
            "dest_ip": "ip",
            "dns.rrname": "domain",
            "dns.rdata": "host",
            "dns.query": "domain",
            "dns.queries": "domain",
            "dns.answers": "host",
            "dns.grouped.A": "ip",
            "dns.grouped.AAAA": "ip",
            "dns.grouped.CNAME": "domain",
            "http.hostname": "host",
            "@url": "url",
            "tls.sni": "domain",
            "fileinfo.md5": "md5",
            "fileinfo.sha1": "sha1",
            "fileinfo.sha256": "sha256",
            "smtp.mail_from": "email",
            "smtp.rcpt_to": "email",
            "email.from": "email",
            "email.to": "email",
            "email.cc": "email",
        }
    )
    derived_sources = MappingProxyType({"@url": ("http.hostname", "http.url")})

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        record = first_json_object(head)
        return record is not None and "event_type" in record and "timestamp" in record

    def derived_fields(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``@url`` from ``http.hostname`` and ``http.url``."""
        return with_url(frame, "http.hostname", "http.url")
