"""``snort``: Snort 2.9 rules, one per domain and URL, and IP-only rules with address lists.

Snort has no datasets, so each value is its own rule and its own ``content`` match: a domain
as the labels of a DNS query (which also catches its subdomains), a URL as its raw URI and
Host header. Every byte of a value outside plain printable ASCII, and every ``"``, ``;``,
``\\``, ``|`` and ``:``, is written in ``|hex|`` form, so a value can never end its option.
File hashes and email addresses have no Snort rule form and are not exported. Snort 3 reads
these rules after ``snort2lua``.
"""

from __future__ import annotations

from collections.abc import Iterator

from qalqan.interop.exports._rules import (
    CLASSTYPE,
    AddressGroups,
    address_rules,
    content_bytes,
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

__all__ = ["FORMAT", "SID_BASE", "SnortFormat"]

SID_BASE = 1_890_000


def _dns_labels(domain: str) -> str:
    wire = "".join(chr(len(label)) + label for label in domain.split(".")) + "\x00"
    return content_bytes(wire)


class SnortFormat(ExportFormat):
    name = "snort"
    description = "Snort 2.9 rules: a rule per domain and URL, IP-only rules for addresses"
    media_type = "text/plain; charset=utf-8"
    suffix = ".rules"
    kinds = ("ip", "cidr", "domain", "url")

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        org = rule_text(ctx.org, 80)
        groups = AddressGroups()
        sid = SID_BASE
        yield MAIN, f"# Qalqan detection rules for {org}, up to TLP:{ctx.ceiling.label}\n".encode()
        for batch in source.indicators():
            rules: list[str] = []
            for item in batch:
                kind, value = item[KIND], item[VALUE]
                if kind in ("ip", "cidr"):
                    ready = groups.add(value, ctx)
                    if ready:
                        rules.append(address_rules(ready, org, sid))
                        sid += 2
                elif kind == "domain":
                    rules.append(
                        f'alert udp $HOME_NET any -> any 53 (msg:"QALQAN {org} DNS query for '
                        f'{rule_text(value, 120)}"; content:"{_dns_labels(value)}"; '
                        f"nocase; fast_pattern; {CLASSTYPE}; sid:{sid}; rev:1;)\n"
                    )
                    sid += 1
                else:
                    parts = url_parts(value)
                    if parts is None:
                        ctx.skip("URL scheme not seen by HTTP rules")
                        continue
                    host, uri = parts
                    rules.append(
                        f"alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS "
                        f'(msg:"QALQAN {org} request for {rule_text(value, 120)}"; '
                        f'flow:established,to_server; content:"{content_bytes(uri)}"; '
                        f'http_raw_uri; content:"Host|3A 20|{content_bytes(host)}"; '
                        f"http_header; nocase; {CLASSTYPE}; sid:{sid}; rev:1;)\n"
                    )
                    sid += 1
            if rules:
                yield MAIN, "".join(rules).encode()
        rest = groups.flush()
        if rest:
            yield MAIN, address_rules(rest, org, sid).encode()


FORMAT = SnortFormat()
