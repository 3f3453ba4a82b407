"""``report``: the indicators mentioned in a threat report, a PDF, an HTML page or plain text.

The format is told by the content, not the name: ``%PDF-`` near the start is a PDF (its text
extracted page by page with pypdf), a first non-blank character ``<`` is HTML (its visible text:
script, style, noscript and template content skipped, the title kept as the report's name), and
anything else is text (UTF-8, UTF-16 or Latin-1, sniffed as for line-based feeds). ioc-finder
then finds the indicators, defanged ones included (``hxxp://evil[.]com``).

Only the first ``max_chars`` characters of text are searched (ioc-finder takes about two
seconds per million characters); a longer report says so in a ``Reject`` at line 0 (the report
as a whole). Values are numbered in the order they first appear in the text. Every value's
origin is ``report:`` and the SHA-256 of the report's bytes, so a new version of a report
replaces the values of the old one, and one ``Document`` describes it.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import warnings
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import ioc_fanger
from pydantic import PositiveInt
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from qalqan.errors import InvalidInput
from qalqan.feeds.fetch import TextLines
from qalqan.feeds.items import Context, Document, Item, Reject, Unchanged, Value
from qalqan.feeds.sources import Job, Source, SourceOptions, register

__all__ = ["ReportOptions", "ReportSource"]

# ioc-finder's result keys, in the order values of the same position are listed, and their kinds.
_KINDS = {
    "urls": "url",
    "email_addresses": "email",
    "domains": "domain",
    "ipv4_cidrs": "cidr",
    "ipv6_cidrs": "cidr",
    "ipv4s": "ip",
    "ipv6s": "ip",
    "sha512s": "sha512",
    "sha256s": "sha256",
    "sha1s": "sha1",
    "md5s": "md5",
}
_PDF_MAGIC = b"%PDF-"
_SNIFF = 1024  # the PDF specification lets the header start anywhere in the first 1024 bytes
_DESCRIPTION_LINES = 5
_MAX_DESCRIPTION = 500
_HIDDEN = frozenset({"script", "style", "noscript", "template"})
# Elements that separate words: "<td>192.0.2.1</td><td>192.0.2.2</td>" is two addresses.
_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table"),
        *("tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
    }
)


class ReportOptions(SourceOptions):
    """``max_chars``: how much text is searched; ``domains_from_urls``: whether the host of a
    URL found in the report is also a domain value."""

    max_chars: PositiveInt = 5_000_000
    domains_from_urls: bool = True


class _VisibleText(HTMLParser):
    """What a browser shows of a page, and its title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            (self.title if self._in_title else self.parts).append(data)


def _visible_text(markup: str) -> tuple[str, str | None]:
    """The visible text of an HTML page and its title."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts), " ".join("".join(parser.title).split()) or None


def _decode(stream: IO[bytes], limit: int) -> tuple[str, bool]:
    """The first ``limit`` characters of a text stream, and whether there was more.

    The encoding is sniffed as for line-based feeds; text that is not UTF-8 is read as Latin-1.
    """
    data = stream.read(4 * limit)  # no character takes more than four bytes
    more = bool(stream.read(1))
    encoding = TextLines(io.BytesIO(data[:_SNIFF])).encoding  # InvalidInput for binary data
    wide = encoding.startswith("utf-16")
    # Not final when more follows: a character cut at the end of the bytes read is dropped.
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace" if wide else "strict")
    try:
        text = decoder.decode(data, final=not more)
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text[:limit], more or len(text) > limit


def _pdf_text(stream: IO[bytes], limit: int) -> tuple[str, str | None, bool]:
    """The first ``limit`` characters of a PDF's text, its title, and whether there was more;
    InvalidInput when it cannot be read."""
    pages: list[str] = []
    size = 0
    try:
        reader = PdfReader(stream)
        title = reader.metadata.title if reader.metadata is not None else None
        for page in reader.pages:
            pages.append(page.extract_text())
            size += len(pages[-1]) + 1
            if size > limit:
                break
        unread = len(reader.pages) - len(pages)
    except FileNotDecryptedError:
        raise InvalidInput("the PDF is encrypted with a password", field="content") from None
    # pypdf reports most damage as PyPdfError, but a broken object table can surface as a
    # builtin error from deep inside it.
    except (PyPdfError, LookupError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"the PDF cannot be read: {exc}", field="content") from exc
    text = "\n".join(pages)
    name = " ".join(title.split()) if isinstance(title, str) else ""
    return text[:limit], name or None, len(text) > limit or unread > 0


@functools.cache
def _ioc_finder() -> Callable[..., Any]:
    """ioc-finder's ``find_iocs``, imported on first use.

    Importing it takes a third of a second (it builds its grammars), and pyparsing warns about
    those grammars while it does: the warnings are for ioc-finder's authors, not our users.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"ioc_finder\.")
        from ioc_finder import find_iocs
    return find_iocs  # type: ignore[no-any-return]


def _indicators(text: str, domains_from_urls: bool) -> list[tuple[str, str]]:
    """The ``(kind, value)`` pairs found in ``text``, in the order they first appear."""
    found = _ioc_finder()(
        text,
        included_ioc_types=list(_KINDS),
        parse_domain_from_url=domains_from_urls,
        # A URL needs its scheme to be one ("evil.com/x" is the domain evil.com, found anyway);
        # a network is not also its first address.
        parse_urls_without_scheme=False,
        parse_address_from_cidr=False,
    )
    # ioc-finder returns some kinds in set order: sort by place in the text, so that line
    # numbers are the same from one run to the next. IPv6 networks are sought in the text as
    # written (fanging mistakes "::/" for a defanged "://").
    fanged: str = ioc_fanger.fang(text)
    places = (fanged, fanged.lower(), text)
    order = {key: rank for rank, key in enumerate(_KINDS)}

    def place(value: str) -> int:
        found_at = (
            where.find(needle)
            for where, needle in zip(places, (value, value.lower(), value), strict=True)
        )
        return min((at for at in found_at if at >= 0), default=len(text))

    pairs = [
        (place(value), order[key], _KINDS[key], value)
        for key in _KINDS
        for value in dict.fromkeys(found.get(key) or ())
    ]
    return [(kind, value) for _, _, kind, value in sorted(pairs)]


def _file_name(url: str) -> str:
    """The last segment of ``url``'s path, or its host when it has none."""
    parts = urlsplit(url)
    return unquote(parts.path.rstrip("/").rpartition("/")[2]) or parts.netloc or url


def _first_lines(text: str) -> str | None:
    """The first few non-blank lines of ``text``, whitespace collapsed, bounded."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    kept = [line for line in lines if line][:_DESCRIPTION_LINES]
    return "\n".join(kept)[:_MAX_DESCRIPTION] or None


@register
class ReportSource(Source):
    kind = "report"
    summary = "the indicators in a threat report: PDF, HTML or text"
    options_model = ReportOptions

    def read(self, job: Job) -> Iterator[Item]:
        """Yield the report's values, in order of appearance, then its Document; raise
        InvalidInput when it is neither a PDF, HTML nor text, or a damaged PDF."""
        options = self.options
        assert isinstance(options, ReportOptions)
        resource = job.fetch()
        if resource is None:
            yield Unchanged()
            return
        with resource:
            stream = resource.stream
            digest = hashlib.sha256()
            for chunk in iter(functools.partial(stream.read, 1 << 16), b""):
                digest.update(chunk)
            stream.seek(0)
            is_pdf = _PDF_MAGIC in stream.read(_SNIFF)
            stream.seek(0)
            title = None
            if is_pdf:
                body, title, truncated = _pdf_text(stream, options.max_chars)
            else:
                body, truncated = _decode(stream, options.max_chars)
                if body.lstrip().startswith("<"):
                    body, title = _visible_text(body)
        origin = f"report:{digest.hexdigest()}"
        name = title or _file_name(job.url)
        if truncated:
            why = f"only the first {options.max_chars} characters of the report were searched"
            yield Reject(0, why, field="content")
        context = Context(description=f"found in report {name}"[:1000])
        for line, (kind, value) in enumerate(_indicators(body, options.domains_from_urls), 1):
            yield Value(line, value, kind, context, origin)
        web = urlsplit(job.url).scheme.lower() in ("http", "https")
        yield Document(origin, name, _first_lines(body), url=job.url if web else None)
