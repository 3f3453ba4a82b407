"""``text``: one value per line, as blocklists are published (Spamhaus DROP, abuse.ch, ...).

``#`` and ``;`` start comments, whole-line or after a value (``1.2.3.0/24 ; SBL123``); the
comment after a value becomes its description. Each line's kind is detected on its own unless
the ``kind`` option fixes it. Defanged values (``hxxp://evil[.]example``) are refanged.
"""

from __future__ import annotations

from collections.abc import Iterator

from qalqan.feeds.items import NO_CONTEXT, Context, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, Source, SourceOptions, register

__all__ = ["TextOptions", "TextSource"]


class TextOptions(SourceOptions):
    kind: str | None = None
    comment_as_description: bool = True


def _split_comment(line: str) -> tuple[str, str]:
    """The value part and the comment part of a line."""
    if "#" not in line and ";" not in line and "//" not in line:
        return line.strip(), ""
    cut = len(line)
    for mark in ("#", ";", " //"):
        at = line.find(mark)
        # A URL may hold '#' (a fragment) or ';' (parameters): only a mark after a space counts
        # unless it starts the line.
        if at == 0 or (at > 0 and line[at - 1] in " \t"):
            cut = min(cut, at)
    return line[:cut].strip(), line[cut:].lstrip("#;/ \t").strip()


@register
class TextSource(Source):
    kind = "text"
    summary = "one value per line; # and ; comments; kinds detected per line"
    options_model = TextOptions

    def read(self, job: Job) -> Iterator[Item]:
        options = self.options
        assert isinstance(options, TextOptions)
        resource = job.fetch()
        if resource is None:
            yield Unchanged()
            return
        with resource:
            lines = job.lines(resource)
            for line_no, line in lines:
                value, comment = _split_comment(line)
                if not value:
                    continue
                fields = value.split()
                if len(fields) > 1:
                    # "1.2.3.4 80": a trailing number (a port, a count) is not part of the value.
                    if len(fields) != 2 or not fields[1].isdigit():
                        why = f"{value[:100]!r} is not one value: it contains a space"
                        yield Reject(line_no, why, field="value", raw=value[:200])
                        continue
                    value = fields[0]
                context = (
                    Context(description=comment[:1000])
                    if comment and options.comment_as_description
                    else NO_CONTEXT
                )
                yield Value(line_no, value, options.kind, context)
            for line_no, reason in lines.rejects:
                yield Reject(line_no, reason)
