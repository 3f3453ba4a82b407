"""Canonical values of atomic observables: addresses, networks, domains, URLs, emails, hashes.

Everything the observable index stores or looks up goes through :func:`normalize`, so two
spellings of one indicator (``Example.COM.`` and ``example.com``) meet on one value. Addresses and
networks also carry a range ``[ip_start, ip_end]`` in a single 128-bit space in which IPv4 sits
at ``::ffff:0:0/96``; "which indicators cover this address" is then a range query on strings.

:func:`normalize` takes values exactly as written (STIX objects and patterns are not defanged);
:func:`parse_value` is for text a person pasted: it refangs and guesses the kind first.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import idna

__all__ = [
    "KINDS",
    "KIND_ALIASES",
    "InvalidObservable",
    "Observable",
    "detect_kind",
    "from_sco",
    "from_sco_property",
    "hash_kind",
    "ip_key",
    "normalize",
    "parse_value",
    "refang",
]

KINDS: Final[tuple[str, ...]] = (
    "ip",
    "cidr",
    "domain",
    "url",
    "email",
    "md5",
    "sha1",
    "sha256",
    "sha512",
)


@dataclass(frozen=True, slots=True)
class Observable:
    """One atomic value in canonical form.

    ``kind`` is one of :data:`KINDS`. For ``ip`` and ``cidr``, ``ip_start`` and ``ip_end`` are the
    first and last address covered, each as :func:`ip_key` encodes it; they are ``None`` for every
    other kind.
    """

    kind: str
    value: str
    ip_start: str | None = None
    ip_end: str | None = None


class InvalidObservable(ValueError):
    """A value that cannot be read as an observable; the message says why.

    ``kind`` is the kind that was tried (``None`` when none could be guessed) and ``value`` the
    text as given.
    """

    def __init__(self, message: str, *, kind: str | None, value: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.value = value


_HASH_LENGTHS: Final[Mapping[str, int]] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HASH_TITLES: Final[Mapping[str, str]] = {
    "md5": "an MD5",
    "sha1": "a SHA-1",
    "sha256": "a SHA-256",
    "sha512": "a SHA-512",
}
# Hash algorithm names as STIX spells them, upper-cased with "-" and "_" removed.
_HASH_ALGORITHMS: Final[Mapping[str, str]] = {
    "MD5": "md5",
    "SHA1": "sha1",
    "SHA256": "sha256",
    "SHA512": "sha512",
}
_VALUE_KINDS: Final[Mapping[str, str]] = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "domain-name": "domain",
    "url": "url",
    "email-addr": "email",
}
_DEFAULT_PORTS: Final[Mapping[str, int]] = {"http": 80, "https": 443}

# ASCII classes only: ``\d`` and ``int()`` would also take other scripts' digits.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_PREFIX_RE: Final = re.compile(r"[0-9]{1,3}")
_LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN_RE: Final = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_HEX_RE: Final = re.compile("[0-9a-f]+")
_SCHEME_RE: Final = re.compile("([A-Za-z][A-Za-z0-9+.-]*)://")
_AUTHORITY_RE: Final = re.compile("[^/?#]*")
_SPACE_OR_CONTROL_RE: Final = re.compile(r"[\x00-\x20\x7f]")
_IP_SHAPE_RE: Final = re.compile("[0-9.]+|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
_V4_MAPPED_BASE: Final = 0xFFFF << 32
_V4_KEY_PREFIX: Final = f"{_V4_MAPPED_BASE:032x}"[:24]
_HEXTETS: Final = struct.Struct(">8H")
_PADDED_HEXTETS: Final = ":{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:".format
_ZERO_RUNS: Final = tuple(":" + "0:" * length for length in range(8, 1, -1))

_REFANG_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"[\[({]\s*(?:\.|dot)\s*[\])}]", re.IGNORECASE), "."),
    (re.compile(r"\\\."), "."),
    (re.compile(r"\[\s*:\s*//\s*\]"), "://"),
    (re.compile(r"[\[(]\s*:\s*[\])]"), ":"),
    (re.compile(r"\[\s*/\s*\]"), "/"),
    (re.compile(r"[\[({]\s*(?:at|@)\s*[\])}]", re.IGNORECASE), "@"),
    (re.compile(r"\bhxxp(s?)(?=://)", re.IGNORECASE), r"http\1"),
    (re.compile(r"\bfxp(s?)(?=://)", re.IGNORECASE), r"ftp\1"),
)


# Every rule above needs one of these; most values have none and skip the rules.
_DEFANG_HINT_RE: Final = re.compile(r"[\[({\\]|xps?://", re.IGNORECASE)


def _show(raw: str) -> str:
    """``raw`` quoted for a message, cut short so one huge value cannot flood a report."""
    return repr(raw if len(raw) <= 100 else raw[:97] + "...")


def ip_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address as 32 lowercase hex digits of its 128-bit value; IPv4 goes to ``::ffff:0:0/96``.

    Keys of the same length compare as strings in address order, so IPv4 and IPv6 ranges share one
    lexicographic space.
    """
    number = int(address)
    if address.version == 4:
        number |= _V4_MAPPED_BASE
    return f"{number:032x}"


def _address_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """RFC 5952 text: hextets without leading zeros, the longest run (two or more) of zero hextets
    as ``::``, the first on a tie; a mapped IPv4 address in dotted form (section 5).

    Written out rather than taken from ``ipaddress``: its ``compressed`` is several times slower,
    and Python 3.13 changed how it prints mapped addresses.
    """
    if address.version == 4:
        return str(address)
    number = int(address)
    if number >> 32 == 0xFFFF:
        return f"::ffff:{ipaddress.IPv4Address(number & 0xFFFFFFFF)}"
    # Colons on both ends, so that a zero run always reads ":0:...:0:" wherever it is.
    padded = _PADDED_HEXTETS(*_HEXTETS.unpack(address.packed))
    for run in _ZERO_RUNS:
        start = padded.find(run)
        if start >= 0:
            return f"{padded[1:start]}::{padded[start + len(run) : -1]}"
    return padded[1:-1]


def _normalize_ip(raw: str, kind: str) -> Observable:
    text = raw.strip()
    if "/" in text:
        return _normalize_network(raw, text, kind)
    if _IPV4_RE.fullmatch(text) is not None:
        # The hot path of pattern validation. inet_aton is a pure conversion, several times
        # faster than ipaddress; the expression above has already refused the odd forms
        # ("1.2", "0x7f.1") that inet_aton alone would take.
        key = _V4_KEY_PREFIX + socket.inet_aton(text).hex()
        return Observable("ip", text, key, key)
    if "%" in text:
        raise InvalidObservable(f"{_show(raw)} has a zone index", kind=kind, value=raw)
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text)
        )
    except ValueError:
        raise InvalidObservable(
            f"{_show(raw)} is not an IP address", kind=kind, value=raw
        ) from None
    key = ip_key(address)
    return Observable("ip", _address_text(address), key, key)


def _normalize_network(raw: str, text: str, kind: str) -> Observable:
    address_text, _, prefix = text.partition("/")
    if "%" in address_text or _PREFIX_RE.fullmatch(prefix) is None:
        raise InvalidObservable(f"{_show(raw)} is not an IP network", kind=kind, value=raw)
    if _IPV4_RE.fullmatch(address_text) is not None and int(prefix) < 32:
        # The common case of blocklists, without ipaddress (as for single addresses).
        host_bits = 32 - int(prefix)
        low = int.from_bytes(socket.inet_aton(address_text), "big") >> host_bits << host_bits
        high = low | ((1 << host_bits) - 1)
        first = socket.inet_ntoa(low.to_bytes(4, "big"))
        return Observable(
            "cidr",
            f"{first}/{int(prefix)}",
            f"{_V4_KEY_PREFIX}{low:08x}",
            f"{_V4_KEY_PREFIX}{high:08x}",
        )
    try:
        network = ipaddress.ip_network(f"{address_text}/{int(prefix)}", strict=False)
    except ValueError:
        raise InvalidObservable(
            f"{_show(raw)} is not an IP network", kind=kind, value=raw
        ) from None
    start = network.network_address
    if network.prefixlen == network.max_prefixlen:
        key = ip_key(start)
        return Observable("ip", _address_text(start), key, key)
    value = f"{_address_text(start)}/{network.prefixlen}"
    return Observable("cidr", value, ip_key(start), ip_key(network.broadcast_address))


def _domain_problem(name: str) -> str:
    """Why ``name`` (lowercase, trailing dot removed) fails the domain rules."""
    if not name:
        return "it is empty"
    if len(name) > 253:
        return "longer than 253 characters"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "empty label"
        if len(label) > 63:
            return "label longer than 63 characters"
        if label.startswith("-") or label.endswith("-"):
            return f"label {label!r} starts or ends with a hyphen"
        for char in label:
            if not (char.isascii() and (char.isalnum() or char in "-_")):
                return f"character {char!r} is not allowed"
    return "the top-level label is all digits"


def _canonical_domain(raw: str, kind: str = "domain") -> str:
    name = raw.strip()
    if name.isascii():
        name = name.lower()
    else:
        try:
            mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
            name = ".".join(
                label if label.isascii() else idna.alabel(label).decode("ascii")
                for label in mapped.split(".")
            )
        except UnicodeError as exc:
            message = f"{_show(raw)} is not a domain name: {exc}"
            raise InvalidObservable(message, kind=kind, value=raw) from None
    if name.endswith("."):
        name = name[:-1]
    if (
        len(name) <= 253
        and _DOMAIN_RE.fullmatch(name) is not None
        and not name.rpartition(".")[2].isdigit()
    ):
        return name
    message = f"{_show(raw)} is not a domain name: {_domain_problem(name)}"
    raise InvalidObservable(message, kind=kind, value=raw)


def _normalize_domain(raw: str) -> Observable:
    return Observable("domain", _canonical_domain(raw))


def _url_host(raw: str, hostport: str) -> tuple[str, str]:
    """The canonical host of a URL authority (without user info) and the port text after it."""

    def invalid(why: str) -> InvalidObservable:
        return InvalidObservable(f"{_show(raw)} is not a URL: {why}", kind="url", value=raw)

    if hostport.startswith("["):
        inner, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise invalid("malformed IPv6 host")
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise invalid(f"host {inner!r} is not an IPv6 address") from None
        if address.scope_id is not None:
            raise invalid("host has a zone index")
        return f"[{_address_text(address)}]", after[1:]
    host, _, port = hostport.partition(":")
    if not host:
        raise invalid("no host")
    if _IP_SHAPE_RE.fullmatch(host) is not None:
        if _IPV4_RE.fullmatch(host) is None:
            raise invalid(f"host {host!r} is not an IPv4 address")
        return host, port
    try:
        return _canonical_domain(host, "url"), port
    except InvalidObservable as exc:
        raise invalid(f"host {exc}") from None


def _normalize_url(raw: str) -> Observable:
    text = raw.strip()

    def invalid(why: str) -> InvalidObservable:
        return InvalidObservable(f"{_show(raw)} is not a URL: {why}", kind="url", value=raw)

    scheme_match = _SCHEME_RE.match(text)
    if scheme_match is None:
        raise invalid("no scheme")
    if _SPACE_OR_CONTROL_RE.search(text) is not None:
        raise invalid("it contains whitespace or control characters")
    scheme = scheme_match.group(1).lower()
    rest = text[scheme_match.end() :]
    authority_match = _AUTHORITY_RE.match(rest)
    authority = authority_match.group() if authority_match is not None else ""
    path, _, query = rest[len(authority) :].partition("#")[0].partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    host, port_text = _url_host(raw, hostport)
    port = ""
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
            raise invalid(f"port {port_text!r} is not a number from 0 to 65535")
        if _DEFAULT_PORTS.get(scheme) != int(port_text):
            port = f":{int(port_text)}"
    query = f"?{query}" if query else ""
    return Observable("url", f"{scheme}://{userinfo}{at}{host}{port}{path or '/'}{query}")


def _normalize_email(raw: str) -> Observable:
    text = raw.strip()
    if text.count("@") != 1:
        message = f"{_show(raw)} is not an email address: it needs exactly one '@'"
        raise InvalidObservable(message, kind="email", value=raw)
    local, _, domain = text.partition("@")
    if not local or _SPACE_OR_CONTROL_RE.search(local) is not None:
        message = f"{_show(raw)} is not an email address: bad local part"
        raise InvalidObservable(message, kind="email", value=raw)
    try:
        canonical = _canonical_domain(domain, "email")
    except InvalidObservable as exc:
        message = f"{_show(raw)} is not an email address: domain {exc}"
        raise InvalidObservable(message, kind="email", value=raw) from None
    return Observable("email", f"{local}@{canonical}")


def _hash_normalizer(kind: str) -> Callable[[str], Observable]:
    length = _HASH_LENGTHS[kind]
    title = _HASH_TITLES[kind]

    def normalize_hash(raw: str) -> Observable:
        text = raw.strip().lower()
        if len(text) != length or _HEX_RE.fullmatch(text) is None:
            message = f"{_show(raw)} is not {title} hash ({length} hex digits)"
            raise InvalidObservable(message, kind=kind, value=raw)
        return Observable(kind, text)

    return normalize_hash


_NORMALIZERS: Final[Mapping[str, Callable[[str], Observable]]] = {
    "ip": lambda raw: _normalize_ip(raw, "ip"),
    "cidr": lambda raw: _normalize_ip(raw, "cidr"),
    "domain": _normalize_domain,
    "url": _normalize_url,
    "email": _normalize_email,
    **{kind: _hash_normalizer(kind) for kind in _HASH_LENGTHS},
}


def normalize(kind: str, raw: str) -> Observable:
    """The canonical observable of ``raw`` read as ``kind``; raises :class:`InvalidObservable`.

    ``ip`` and ``cidr`` are read alike: a value with a prefix comes back as ``cidr`` with its host
    bits cleared, a value without one (or a /32, /128 network) as ``ip``. Normalizing a canonical
    value again returns the same observable. Nothing is refanged here.
    """
    normalizer = _NORMALIZERS.get(kind)
    if normalizer is None:
        raise InvalidObservable(f"unknown observable kind {kind!r}", kind=kind, value=raw)
    return normalizer(raw)


def refang(text: str) -> str:
    """``text`` with the usual defanging undone (``hxxp``, ``[.]``, ``[at]``, ...), stripped.

    A bare `` dot `` is left alone; only bracketed forms such as ``[dot]`` are rewritten.
    """
    text = text.strip()
    if _DEFANG_HINT_RE.search(text) is None:
        return text
    for rule, replacement in _REFANG_RULES:
        text = rule.sub(replacement, text)
    return text


def _guess_kind(text: str) -> str | None:
    """The kind ``text`` (already refanged) looks like, judged by its shape alone."""
    if "://" in text:
        return "url"
    if "@" in text and "/" not in text:
        return "email"
    if "/" in text:
        head, _, tail = text.partition("/")
        if _IP_SHAPE_RE.fullmatch(head) is not None and tail.isascii() and tail.isdigit():
            return "cidr"
        host = head.rpartition(":")[0] if head.count(":") == 1 else head
        if "." in host or _IP_SHAPE_RE.fullmatch(host) is not None or host.startswith("["):
            return "url"
        return None
    if len(text) in (32, 40, 64, 128) and _HEX_RE.fullmatch(text.lower()) is not None:
        return {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}[len(text)]
    if _IP_SHAPE_RE.fullmatch(text) is not None:
        return "ip"
    if "." in text.rstrip("."):
        return "domain"
    return None


# STIX cyber-observable type names (and hash names) people and tools use for the kinds.
KIND_ALIASES: Final[Mapping[str, str]] = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "domain-name": "domain",
    "email-addr": "email",
    "md5": "md5",
    "sha-1": "sha1",
    "sha-256": "sha256",
    "sha-512": "sha512",
}


def parse_value(raw: str, kind: str | None = None) -> Observable:
    """Read a value a person typed or pasted: refang, guess the kind if not given, normalize.

    ``kind`` may also be a STIX type name (``ipv4-addr``, ``domain-name``, ...). A URL without a
    scheme (``evil.example/path``) is taken as ``http://``. Raises :class:`InvalidObservable`
    when the kind cannot be guessed or the value does not fit it.
    """
    text = refang(raw)
    if kind is not None:
        kind = KIND_ALIASES.get(kind.lower(), kind.lower())
    if kind is None:
        kind = _guess_kind(text)
        if kind is None:
            message = f"cannot tell what kind of observable {_show(raw)} is"
            raise InvalidObservable(message, kind=None, value=raw)
    if kind == "url" and "://" not in text:
        text = f"http://{text}"
    return normalize(kind, text)


def detect_kind(raw: str) -> str | None:
    """The kind :func:`parse_value` reads ``raw`` as, or ``None`` if it cannot read it.

    Domains need at least one dot here, and a top-level label that is not all digits.
    """
    try:
        return parse_value(raw).kind
    except InvalidObservable:
        return None


def hash_kind(algorithm: str) -> str | None:
    """The kind for a STIX hash algorithm name (``SHA-256``, ``SHA256``, ``sha256``...), if any."""
    return _HASH_ALGORITHMS.get(algorithm.upper().replace("-", "").replace("_", ""))


def from_sco_property(sco_type: str, path: Sequence[str], value: str) -> Observable | None:
    """The observable a property of a cyber-observable object holds, or ``None`` if not indexed.

    ``path`` is the property path below the object, e.g. ``("value",)`` or ``("hashes", "MD5")``.
    Raises :class:`InvalidObservable` for a bad value, including an address of the wrong IP
    version for ``ipv4-addr`` or ``ipv6-addr``.
    """
    if len(path) == 1 and path[0] == "value":
        kind = _VALUE_KINDS.get(sco_type)
        if kind is None:
            return None
        observable = normalize(kind, value)
        if sco_type == "ipv4-addr" and ":" in observable.value:
            raise InvalidObservable(
                f"{_show(value)} is not an IPv4 address", kind=kind, value=value
            )
        if sco_type == "ipv6-addr" and ":" not in observable.value:
            raise InvalidObservable(
                f"{_show(value)} is not an IPv6 address", kind=kind, value=value
            )
        return observable
    if sco_type == "file" and len(path) == 2 and path[0] == "hashes":
        kind = hash_kind(path[1])
        return None if kind is None else normalize(kind, value)
    return None


def from_sco(obj: Mapping[str, Any]) -> list[Observable]:
    """The indexed atomic values of a STIX 2.1 cyber-observable object, in canonical form.

    Covers ``ipv4-addr``, ``ipv6-addr`` (addresses or networks), ``domain-name``, ``url`` and
    ``email-addr`` values and the MD5/SHA-1/SHA-256/SHA-512 entries of a ``file``'s ``hashes``;
    other types give ``[]``. Values that do not normalize are left out, never raised. An object
    marked ``defanged: true`` has its values refanged first.
    """
    sco_type = obj.get("type")
    defanged = obj.get("defanged") is True
    entries: list[tuple[tuple[str, ...], Any]]
    if sco_type == "file":
        hashes = obj.get("hashes")
        if not isinstance(hashes, Mapping):
            return []
        entries = [(("hashes", str(algorithm)), value) for algorithm, value in hashes.items()]
    elif isinstance(sco_type, str) and sco_type in _VALUE_KINDS:
        entries = [(("value",), obj.get("value"))]
    else:
        return []
    found: list[Observable] = []
    for path, value in entries:
        if not isinstance(value, str):
            continue
        try:
            observable = from_sco_property(
                str(sco_type), path, refang(value) if defanged else value
            )
        except InvalidObservable:
            continue
        if observable is not None:
            found.append(observable)
    return found
