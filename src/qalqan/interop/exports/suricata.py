"""``suricata``: Suricata 7 rules over dataset files, written beside the rules file.

- domains: one string dataset, matched on ``dns.query``, ``tls.sni`` and ``http.host``
  (exact names, as Suricata normalizes them);
- URLs: two string datasets, the hosts and the raw request URIs (path and query) of the
  listed URLs, both required by one ``http`` rule;
- file hashes: ``filemd5``/``filesha1``/``filesha256`` lists (hex, one per line). These, not a
  ``dataset`` over ``to_md5``, match the hash of a whole transferred file: a transform applies
  to one inspected chunk of ``file.data``, not to the file. They need file hashing enabled
  (``force-hash`` in suricata.yaml);
- addresses and networks: IP-only rules with address lists, in both directions.

Dataset files of ``type string`` hold one base64 value per line, as Suricata loads them, so no
value can break out of its line. Relative ``load`` paths are found beside the rules file.
Large sets may need ``datasets.limits`` raised in suricata.yaml.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

from qalqan.interop.exports._rules import (
    CLASSTYPE,
    AddressGroups,
    address_rules,
    rule_text,
    url_parts,
)
from qalqan.interop.exports.base import (
    KIND,
    MAIN,
    VALUE,
    Chunk,
    ExportFormat,
    RenderContext,
    Source,
)

__all__ = ["FORMAT", "SID_BASE", "SuricataFormat"]

SID_BASE = 1_880_000
_IP_SID = SID_BASE + 1000
_HASH_KEYWORDS = {"md5": "filemd5", "sha1": "filesha1", "sha256": "filesha256"}
_HASH_PROTOCOLS = ("http", "smtp", "smb", "ftp-data")
_HEX_RE = re.compile("[0-9a-f]+")


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _dataset(name: str, file: str, count: int) -> str:
    hashsize = 1024
    while hashsize < count and hashsize < 65536:
        hashsize *= 2
    memcap = max(16, (count * 256) >> 20)
    return f"dataset:isset,{name},type string,load {file},memcap {memcap}mb,hashsize {hashsize}"


class SuricataFormat(ExportFormat):
    name = "suricata"
    description = "Suricata rules with dataset files (domains, URLs), file hash lists, IP rules"
    media_type = "application/gzip"
    suffix = ".rules"
    kinds = ("ip", "cidr", "domain", "url", "md5", "sha1", "sha256")
    has_side_files = True

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        stem = ctx.stem.lower()
        files = {
            "domain": f"{stem}-domains.lst",
            "url-host": f"{stem}-url-hosts.lst",
            "url-path": f"{stem}-url-paths.lst",
            **{kind: f"{stem}-{kind}.txt" for kind in _HASH_KEYWORDS},
        }
        counts = dict.fromkeys(files, 0)
        seen_hosts: set[str] = set()
        seen_paths: set[str] = set()
        org = rule_text(ctx.org, 80)
        groups = AddressGroups()
        sid = _IP_SID
        yield (
            MAIN,
            (
                f"# Qalqan detection rules for {org}, up to TLP:{ctx.ceiling.label}\n"
                "# Dataset and hash list files are beside this file.\n"
            ).encode(),
        )
        for batch in source.indicators():
            side: dict[str, list[str]] = {}
            rules: list[str] = []
            for item in batch:
                kind, value = item[KIND], item[VALUE]
                if kind in ("ip", "cidr"):
                    ready = groups.add(value, ctx)
                    if ready:
                        rules.append(address_rules(ready, org, sid, _group_label(sid)))
                        sid += 2
                elif kind == "domain":
                    side.setdefault("domain", []).append(_b64(value))
                elif kind == "url":
                    parts = url_parts(value)
                    if parts is None:
                        ctx.skip("URL scheme not seen by HTTP rules")
                        continue
                    host, uri = parts
                    if host not in seen_hosts:
                        seen_hosts.add(host)
                        side.setdefault("url-host", []).append(_b64(host))
                    if uri not in seen_paths:
                        seen_paths.add(uri)
                        side.setdefault("url-path", []).append(_b64(uri))
                elif _HEX_RE.fullmatch(value) is not None:
                    side.setdefault(kind, []).append(value)
                else:
                    ctx.skip("unsafe value")
            for key, lines in side.items():
                counts[key] += len(lines)
                yield files[key], ("\n".join(lines) + "\n").encode()
            if rules:
                yield MAIN, "".join(rules).encode()
        rest = groups.flush()
        if rest:
            yield MAIN, address_rules(rest, org, sid, _group_label(sid)).encode()
        yield MAIN, "".join(_set_rules(org, files, counts)).encode()


def _group_label(sid: int) -> str:
    return f", group {(sid - _IP_SID) // 2 + 1}"


def _set_rules(org: str, files: dict[str, str], counts: dict[str, int]) -> Iterator[str]:
    """The rules over the dataset and hash files that hold something."""
    if counts["domain"]:
        domains = _dataset(files["domain"].removesuffix(".lst"), files["domain"], counts["domain"])
        for offset, (proto, buffer, what) in enumerate(
            (
                ("dns", "dns.query", "DNS query for"),
                ("tls", "tls.sni", "TLS SNI of"),
                ("http", "http.host", "HTTP Host of"),
            ),
            start=1,
        ):
            flow = "" if proto == "dns" else "flow:established,to_server; "
            yield (
                f'alert {proto} $HOME_NET any -> any any (msg:"QALQAN {org} {what} a listed '
                f'domain"; {flow}{buffer}; {domains}; {CLASSTYPE}; '
                f"sid:{SID_BASE + offset}; rev:1;)\n"
            )
    if counts["url-host"] and counts["url-path"]:
        hosts = _dataset(
            files["url-host"].removesuffix(".lst"), files["url-host"], counts["url-host"]
        )
        paths = _dataset(
            files["url-path"].removesuffix(".lst"), files["url-path"], counts["url-path"]
        )
        yield (
            f'alert http $HOME_NET any -> any any (msg:"QALQAN {org} request for a listed URL"; '
            f"flow:established,to_server; http.host; {hosts}; http.uri.raw; {paths}; "
            f"{CLASSTYPE}; sid:{SID_BASE + 10}; rev:1;)\n"
        )
    for row, (kind, keyword) in enumerate(_HASH_KEYWORDS.items()):
        if not counts[kind]:
            continue
        for column, proto in enumerate(_HASH_PROTOCOLS):
            yield (
                f'alert {proto} any any -> any any (msg:"QALQAN {org} file with a listed '
                f'{kind.upper()} over {proto}"; {keyword}:{files[kind]}; {CLASSTYPE}; '
                f"sid:{SID_BASE + 20 + 10 * row + column}; rev:1;)\n"
            )


FORMAT = SuricataFormat()
