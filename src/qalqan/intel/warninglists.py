"""Warninglists: known-benign values (public resolvers, top sites, cloud ranges, hashes of empty
files...) that Qalqan stores but flags, compiled into an index that says fast which list holds a
value and why.

Lists are in MISP's format: those shipped with ``pymispwarninglists`` and those a node admin adds.
Each applies to the Qalqan kinds its ``matching_attributes`` map to and matches as MISP does
(``app/Model/Warninglist.php``):

- ``cidr``: an address inside a listed network; a network lying entirely inside one.
- ``hostname``: a domain equal to an entry or below it; a URL by its host, an email by its domain.
- ``string``: the value equals an entry put in the canonical form of the value's kind.
- ``substring``: an entry occurs in the value (ASCII letters compared without case).
- ``regex``: ``/pattern/flags`` entries searched in the value.

When several lists hold a value, the first in the compiled order is reported. The index keeps no
entry as a Python object: strings become sorted 64-bit polynomial hashes beside their UTF-8 text
in one blob (a hash found is compared with its text before it counts, so no collision, chance or
crafted, flags a value), networks become a tree of nested blocks over sorted address intervals,
and :meth:`WarninglistIndex.check_many` hashes and searches a whole batch with numpy.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import itertools
import operator
import os
import re
import socket
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import ahocorasick
import numpy as np
import numpy.typing as npt
import orjson

from qalqan.domain.observables import KINDS, InvalidObservable, normalize
from qalqan.errors import ConfigurationError, InvalidInput

__all__ = [
    "LIST_TYPES",
    "Warninglist",
    "WarninglistHit",
    "WarninglistIndex",
    "load_index",
    "misp_lists",
    "parse_list",
]

LIST_TYPES: Final[tuple[str, ...]] = ("cidr", "hostname", "string", "substring", "regex")

_IP_KINDS: Final = frozenset({"ip", "cidr"})
_HASH_LENGTHS: Final[Mapping[str, int]] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
# MISP attribute types and the Qalqan kinds of their values; other types are ignored.
_ATTRIBUTE_KINDS: Final[Mapping[str, frozenset[str]]] = {
    **dict.fromkeys(("ip-src", "ip-dst", "ip-src|port", "ip-dst|port"), _IP_KINDS),
    "domain|ip": _IP_KINDS | {"domain"},
    **dict.fromkeys(("domain", "hostname", "hostname|port"), frozenset({"domain"})),
    **dict.fromkeys(("url", "uri"), frozenset({"url"})),
    **{name: frozenset({kind}) for kind in _HASH_LENGTHS for name in (kind, f"filename|{kind}")},
    "malware-sample": frozenset({"md5"}),
    **dict.fromkeys(("email", "email-src", "email-dst", "target-email"), frozenset({"email"})),
    **dict.fromkeys(("whois-registrant-email", "dns-soa-email"), frozenset({"email"})),
}
# The kinds a list of each type can flag at all: networks only hold addresses and networks.
_TYPE_KINDS: Final = {t: _IP_KINDS if t == "cidr" else frozenset(KINDS) for t in LIST_TYPES}
_KIND_INDEX: Final[Mapping[str, int]] = {kind: i for i, kind in enumerate(KINDS)}
_REGEX_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_IGNORED_REGEX_FLAGS: Final = frozenset("gu")  # PCRE "u" is Python's default; "g" is no flag
_CLOSING_DELIMITERS: Final = {"(": ")", "[": "]", "{": "}", "<": ">"}
# Longer entries are skipped: no canonical domain or hash is that long, and a hostile list must
# not blow up the substring automaton or the hash blocks.
_MAX_ENTRY_CHARS: Final = 4096
_SEPARATOR: Final = "\x00"  # between values in the substring scan; no canonical value has it
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FORMAT: Final = 1  # of the compiled arrays and of the cache; bump on any change to either
_CACHE_NAME: Final = "warninglists.npz"
_NONE: Final = int(np.iinfo(np.int32).max)  # "no list" in the best-list tables
_LIST_SHIFT: Final = 16  # a tag is list index << 16 | bitmask of kinds
_STRING, _HOSTNAME, _EITHER = 0, 1, 2  # match classes: by a string list, a hostname list, either

# h(s) = sum(ord(s[i]) * P**i) mod 2**64 with an odd P: P is invertible, so the hash of every
# suffix of a text follows from one cumulative sum over the text.
_P: Final = 0x9E3779B97F4A7C15
_MASK64: Final = (1 << 64) - 1
_WIDTHS: Final = np.array([8 << i for i in range(10)])  # text widths hashed together
_BLOCK_CELLS: Final = 1 << 21  # characters per numpy block, to bound temporary memory

IntArray = npt.NDArray[np.int64]
HashArray = npt.NDArray[np.uint64]


def _powers(base: int) -> HashArray:
    values = [1]
    for _ in range(_MAX_ENTRY_CHARS - 1):
        values.append(values[-1] * base & _MASK64)
    return np.array(values, dtype=np.uint64)


_POW: Final = _powers(_P)
_POW_INV: Final = _powers(pow(_P, -1, 1 << 64))


@dataclass(frozen=True, slots=True)
class Warninglist:
    """One list: its ``entries`` as written, how they match (``type``, one of
    :data:`LIST_TYPES`) and the Qalqan kinds it applies to; ``origin`` is "misp" or "custom"."""

    name: str
    description: str
    type: str
    kinds: frozenset[str]
    entries: tuple[str, ...]
    origin: str = "misp"


@dataclass(frozen=True, slots=True)
class WarninglistHit:
    """A value found on a list: the list's name and a short reason a person can read."""

    list_name: str
    reason: str


def _invalid(field: str, detail: str) -> InvalidInput:
    return InvalidInput(f"warninglist {field}: {detail}", field=field)


def parse_list(document: Mapping[str, Any], origin: str = "custom") -> Warninglist:
    """The :class:`Warninglist` of a MISP-format list document.

    Reads ``name``, ``description``, ``type`` ("string" when absent, as in MISP), ``list`` and
    ``matching_attributes`` (when absent, every kind the type can flag). Entries are kept as
    written, minus blank ones and invalid Unicode; one of no use (a bad network, a regex Python
    cannot compile) is skipped when the index is compiled. Raises
    :class:`~qalqan.errors.InvalidInput` naming the field at fault.
    """
    if not isinstance(document, Mapping):
        raise InvalidInput("a warninglist must be a JSON object", field="document")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip() or not _is_unicode(name):
        raise _invalid("name", "must be a non-empty string")
    description = document.get("description", "")
    if not isinstance(description, str) or not _is_unicode(description):
        raise _invalid("description", "must be a string")
    list_type = document.get("type", "string")
    if list_type not in LIST_TYPES:
        raise _invalid("type", f"must be one of {', '.join(LIST_TYPES)}")
    entries = document.get("list")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise _invalid("list", "must be a list of strings")
    attributes = document.get("matching_attributes")
    kinds = _TYPE_KINDS[list_type]
    if attributes is not None:
        if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
            raise _invalid("matching_attributes", "must be a list of strings")
        kinds = kinds & frozenset().union(*(_ATTRIBUTE_KINDS.get(a, ()) for a in attributes))
        if not kinds:
            detail = f"none applies to a kind Qalqan stores, for a {list_type} list"
            raise _invalid("matching_attributes", detail)
    return Warninglist(
        name=name.strip(),
        description=description,
        type=list_type,
        kinds=kinds,
        entries=tuple(e for e in entries if e.strip() and _is_unicode(e)),
        origin=origin,
    )


def _is_unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (JSON escapes can make lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _misp_list_files() -> list[Path]:
    # Found without importing the package, whose import pulls in jsonschema and takes seconds.
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the pymispwarninglists package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted((root / "data" / "misp-warninglists" / "lists").glob("*/list.json"))


def misp_lists() -> list[Warninglist]:
    """Every list shipped in the ``pymispwarninglists`` package that applies to a kind Qalqan
    stores, in the order of their directory names; lists only for other attribute types (phone
    numbers, Azure application ids...) are left out."""
    lists = []
    for path in _misp_list_files():
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigurationError(f"cannot read the MISP warninglist {path}: {exc}") from exc
        try:
            lists.append(parse_list(document, origin="misp"))
        except InvalidInput:
            continue
    return lists


# --- hashing -------------------------------------------------------------------------------


def _pick(items: Sequence[str], indices: IntArray) -> Sequence[str]:
    """``items`` at ``indices``, gathered in C."""
    if indices.size < 2:
        return [items[i] for i in indices.tolist()]
    picked: tuple[str, ...] = operator.itemgetter(*indices.tolist())(items)
    return picked


def _code_blocks(texts: Sequence[str]) -> Iterator[tuple[IntArray, npt.NDArray[np.uint32]]]:
    """The texts as blocks of code points zero-padded to a power-of-two width, with their
    positions in ``texts``; texts longer than ``_MAX_ENTRY_CHARS`` are left out."""
    buckets = np.searchsorted(_WIDTHS, np.fromiter(map(len, texts), np.int64, len(texts)))
    for bucket, width in enumerate(_WIDTHS.tolist()):
        rows = np.flatnonzero(buckets == bucket)
        step = max(1, _BLOCK_CELLS // width)
        for start in range(0, rows.size, step):
            block = rows[start : start + step]
            chars = np.array(_pick(texts, block), dtype=f"<U{width}")
            yield block, chars.view(np.uint32).reshape(block.size, width)


def _full_hashes(texts: Sequence[str]) -> HashArray:
    """The hash of each text (0 for a text too long to be an entry)."""
    hashes = np.zeros(len(texts), dtype=np.uint64)
    for block, codes in _code_blocks(texts):
        terms = codes.astype(np.uint64)
        terms *= _POW[: codes.shape[1]]
        hashes[block] = terms.sum(axis=1, dtype=np.uint64)
    return hashes


def _suffix_hashes(hosts: Sequence[str], first: int) -> tuple[IntArray, IntArray, HashArray]:
    """The hashes of the label suffixes of host names (of ``a.b.c``: ``b.c``, ``c``, and the
    whole name for hosts from position ``first`` on) as (host position, offset, hash) arrays."""
    rows, starts, hashes = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [_POW[:0]]
    for block, codes in _code_blocks(hosts):
        terms = codes.astype(np.uint64)
        terms *= _POW[: codes.shape[1]]
        # sums[r, j] = sum of c[i] * P**i for i >= j; times P**-j, the hash of host[j:].
        sums = np.cumsum(terms[:, ::-1], axis=1, dtype=np.uint64)[:, ::-1]
        begins = np.empty(codes.shape, dtype=bool)
        begins[:, 0] = (codes[:, 0] != 0) & (block >= first)
        np.logical_and(codes[:, :-1] == ord("."), codes[:, 1:] != 0, out=begins[:, 1:])
        row, column = np.nonzero(begins)
        rows.append(block[row])
        starts.append(column.astype(np.int64))
        hashes.append(sums[row, column] * _POW_INV[column])
    return np.concatenate(rows), np.concatenate(starts), np.concatenate(hashes)


def _mix(values: HashArray) -> HashArray:
    """A bijective scrambling of 64-bit values (the finalizer of splitmix64)."""
    values = values ^ (values >> np.uint64(30))
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


# --- compiling -----------------------------------------------------------------------------


def _hostname_entry(entry: str) -> str | None:
    text = entry.strip().lower().removeprefix("*.").strip(".")
    if text and not text.isascii():
        try:
            text = normalize("domain", text).value
        except InvalidObservable:
            return None
    return text if 0 < len(text) <= _MAX_ENTRY_CHARS else None


def _string_entry(kind: str, entry: str) -> str | None:
    """``entry`` in the canonical form of ``kind``, or None if it cannot be a value of it."""
    if len(entry) > _MAX_ENTRY_CHARS or (kind == "url" and "://" not in entry):
        return None
    if kind in _HASH_LENGTHS and len(entry.strip()) != _HASH_LENGTHS[kind]:
        return None
    try:
        observable = normalize(kind, entry)
    except InvalidObservable:
        return None
    return observable.value if observable.kind == kind else None


def _exact_rows(lists: Sequence[Warninglist]) -> tuple[list[str], IntArray]:
    """The texts of the string and hostname lists, each with its tag (list, kinds)."""
    texts: list[str] = []
    tags = [np.zeros(0, np.int64)]
    for index, wl in enumerate(lists):
        masks: dict[str, int] = {}
        if wl.type == "hostname":
            mask = sum(1 << _KIND_INDEX[kind] for kind in wl.kinds)
            masks = dict.fromkeys(filter(None, map(_hostname_entry, wl.entries)), mask)
        elif wl.type == "string":
            for kind in sorted(wl.kinds):
                for entry in wl.entries:
                    text = _string_entry(kind, entry)
                    if text is not None:
                        masks[text] = masks.get(text, 0) | 1 << _KIND_INDEX[kind]
        texts.extend(masks)
        tags.append(np.fromiter(masks.values(), np.int64, len(masks)) | index << _LIST_SHIFT)
    return texts, np.concatenate(tags)


def _collision_ranks(texts: Sequence[str], order: IntArray, hashes: HashArray) -> IntArray:
    """For rows sorted by hash: 0 for the first text of each hash, and a rank of its own for
    each other text with that hash (a collision, which only crafted entries cause)."""
    ranks = np.zeros(hashes.size, dtype=np.int64)
    followers = np.flatnonzero(hashes[1:] == hashes[:-1]) + 1
    opens = np.ones(hashes.size, dtype=bool)
    opens[followers] = False
    first_of = np.maximum.accumulate(np.where(opens, np.arange(hashes.size), 0))[followers]
    pairs = zip(order[followers].tolist(), order[first_of].tolist(), strict=True)
    colliding = {
        f for f, (a, b) in zip(first_of.tolist(), pairs, strict=True) if texts[a] != texts[b]
    }
    for first in sorted(colliding):
        seen: dict[str, int] = {}
        position = first
        while position < hashes.size and hashes[position] == hashes[first]:
            ranks[position] = seen.setdefault(texts[order[position]], len(seen))
            position += 1
    return ranks


def _tagset_numbers(tags: IntArray, starts: IntArray) -> tuple[IntArray, list[list[int]]]:
    """Number the distinct tag sequences ``tags[starts[g]:starts[g + 1]]``: the number of each
    group, and the sequence of each number."""
    sizes = np.diff(np.append(starts, tags.size))
    row_group = np.repeat(np.arange(starts.size), sizes)
    place = np.arange(tags.size) - starts[row_group]
    seed = 0
    while True:
        # Groups are told apart by a sum of scrambled tags, then compared exactly; should two
        # different groups ever share a sum, the next seed is tried.
        scrambled = _mix(tags.astype(np.uint64) + np.uint64(seed))
        signatures = np.add.reduceat(scrambled, starts) if starts.size else scrambled
        _, first, numbers = np.unique(signatures, return_index=True, return_inverse=True)
        model = first[numbers]
        if np.array_equal(sizes, sizes[model]) and np.array_equal(
            tags, tags[starts[model[row_group]] + place]
        ):
            sequences = [tags[starts[g] : starts[g] + sizes[g]].tolist() for g in first]
            return numbers.astype(np.int64), sequences
        seed += 1


def _compile_exact(lists: Sequence[Warninglist]) -> dict[str, npt.NDArray[Any]]:
    """Sorted hashes of the distinct texts, their UTF-8 bytes, and for each text the first
    list by kind and match class (through a table of the distinct sets of tags)."""
    texts, tags = _exact_rows(lists)
    hashes = _full_hashes(texts)
    order = np.lexsort((tags, hashes))
    ranks = _collision_ranks(texts, order, hashes[order])
    if ranks.any():
        regrouped = np.lexsort((tags[order], ranks, hashes[order]))
        order, ranks = order[regrouped], ranks[regrouped]
    hashes, tags = hashes[order], tags[order]
    new_row = np.ones(hashes.size, dtype=bool)
    new_row[1:] = (hashes[1:] != hashes[:-1]) | (ranks[1:] != ranks[:-1])
    starts = np.flatnonzero(new_row)
    numbers, tagsets = _tagset_numbers(tags, starts)
    best = np.full((len(tagsets), len(KINDS), 3), _NONE, dtype=np.int32)
    for number, tagset in enumerate(tagsets):
        for tag in tagset:  # ascending, so the first list to claim a cell is the best
            index, mask = tag >> _LIST_SHIFT, tag & ((1 << _LIST_SHIFT) - 1)
            column = _STRING if lists[index].type == "string" else _HOSTNAME
            for kind in range(len(KINDS)):
                if mask >> kind & 1 and best[number, kind, column] == _NONE:
                    best[number, kind, column] = index
    best[:, :, _EITHER] = best[:, :, :2].min(axis=2)
    row_texts = [texts[i] for i in order[starts].tolist()]
    blob = _utf8("".join(row_texts))
    sizes = map(len, row_texts if blob.isascii() else map(_utf8, row_texts))
    offsets = np.zeros(len(row_texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(sizes, np.int64, len(row_texts)), out=offsets[1:])
    return {
        "hashes": hashes[starts],
        "tagsets": numbers.astype(np.int32),
        "offsets": offsets,
        "blob": np.frombuffer(blob, dtype=np.uint8),
        "best": best,
    }


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _parse_block(text: str) -> tuple[int, int, int] | None:
    """(IP version, first address as a number, prefix length) of an address or a network
    written as text, host bits cleared; None if it is neither."""
    address, slash, prefix_text = text.partition("/")
    version, bits = (6, 128) if ":" in address else (4, 32)
    try:
        packed = socket.inet_pton(socket.AF_INET6 if version == 6 else socket.AF_INET, address)
    except (OSError, ValueError):
        return None
    prefix = bits
    if slash:
        if not (prefix_text.isascii() and prefix_text.isdigit() and len(prefix_text) <= 3):
            return None
        prefix = int(prefix_text)
    if prefix > bits:
        return None
    return version, int.from_bytes(packed, "big") >> (bits - prefix) << (bits - prefix), prefix


def _block_end(block: tuple[int, int, int]) -> int:
    version, start, prefix = block
    return start | ((1 << ((32 if version == 4 else 128) - prefix)) - 1)


def _compile_networks(lists: Sequence[Warninglist]) -> dict[str, npt.NDArray[Any]]:
    """The distinct listed networks as a forest (listed networks never overlap without one
    holding the other), each with its parent and the node of the first list among it and its
    ancestors; and the address space cut into intervals labelled with the innermost network."""
    owner: dict[tuple[int, int, int], int] = {}
    for index, wl in enumerate(lists):
        if wl.type == "cidr":
            for block in map(_parse_block, map(str.strip, wl.entries)):
                if block is not None:
                    owner.setdefault(block, index)
    nodes = sorted(owner)  # by version, then start, the larger of two blocks first
    parents: list[int] = []
    best: list[int] = []
    segments: list[tuple[int, int, int]] = []  # (first address, last address, innermost node)
    stack: list[int] = []
    cursor = 0

    def close_innermost() -> None:
        nonlocal cursor
        top = stack.pop()
        end = _block_end(nodes[top])
        if cursor <= end:
            segments.append((cursor, end, top))
        cursor = end + 1

    for number, block in enumerate(nodes):
        while stack and (
            nodes[stack[-1]][0] != block[0] or _block_end(nodes[stack[-1]]) < block[1]
        ):
            close_innermost()
        if stack and cursor < block[1]:
            segments.append((cursor, block[1] - 1, stack[-1]))
        parent = stack[-1] if stack else -1
        inherited = best[parent] if parent >= 0 else number
        parents.append(parent)
        best.append(inherited if owner[nodes[inherited]] < owner[block] else number)
        stack.append(number)
        cursor = block[1]
    while stack:
        close_innermost()
    seg_v6 = [nodes[node][0] == 6 for _, _, node in segments]
    return {
        "node_v6": np.array([block[0] == 6 for block in nodes], dtype=bool),
        "node_high": np.array([block[1] >> 64 for block in nodes], dtype=np.uint64),
        "node_low": np.array([block[1] & _MASK64 for block in nodes], dtype=np.uint64),
        "node_prefix": np.array([block[2] for block in nodes], dtype=np.int16),
        "node_list": np.array([owner[block] for block in nodes], dtype=np.int32),
        "node_parent": np.array(parents, dtype=np.int32),
        "node_best": np.array(best, dtype=np.int32),
        "seg_v6": np.array(seg_v6, dtype=bool),
        "seg_first_high": np.array([s[0] >> 64 for s in segments], dtype=np.uint64),
        "seg_first_low": np.array([s[0] & _MASK64 for s in segments], dtype=np.uint64),
        "seg_last_high": np.array([s[1] >> 64 for s in segments], dtype=np.uint64),
        "seg_last_low": np.array([s[1] & _MASK64 for s in segments], dtype=np.uint64),
        "seg_node": np.array([s[2] for s in segments], dtype=np.int32),
    }


def _ascii_lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _compile_substrings(lists: Sequence[Warninglist]) -> tuple[list[str], npt.NDArray[Any]]:
    """The distinct substring patterns and, for each, the first list holding it by kind."""
    best: dict[str, list[int]] = {}
    for index, wl in enumerate(lists):
        if wl.type != "substring":
            continue
        for entry in wl.entries:
            pattern = _ascii_lower(entry.strip())
            if not pattern or len(pattern) > _MAX_ENTRY_CHARS or _SEPARATOR in pattern:
                continue
            row = best.setdefault(pattern, [_NONE] * len(KINDS))
            for kind in wl.kinds:
                row[_KIND_INDEX[kind]] = min(row[_KIND_INDEX[kind]], index)
    table = np.array(list(best.values()), dtype=np.int32).reshape(len(best), len(KINDS))
    return list(best), table


def _compile_regex(entry: str) -> re.Pattern[str] | None:
    """A PCRE-style ``/pattern/flags`` entry (any non-alphanumeric delimiter, or brackets)
    compiled, or None if Python cannot use it."""
    entry = entry.strip()
    if not 2 <= len(entry) <= _MAX_ENTRY_CHARS or entry[0].isalnum() or entry[0] == "\\":
        return None
    end = entry.rfind(_CLOSING_DELIMITERS.get(entry[0], entry[0]))
    flags = entry[end + 1 :]
    if end <= 0 or not set(flags) <= _REGEX_FLAGS.keys() | _IGNORED_REGEX_FLAGS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and the like
            return re.compile(entry[1:end], sum(_REGEX_FLAGS.get(flag, 0) for flag in set(flags)))
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def _digest(lists: Iterable[Warninglist], *extra: object) -> str:
    digest = hashlib.blake2b(orjson.dumps([_FORMAT, *extra]), digest_size=16)
    for wl in lists:
        record = [wl.name, wl.description, wl.type, sorted(wl.kinds), wl.origin, wl.entries]
        digest.update(orjson.dumps(record))
    return digest.hexdigest()


# --- the index -----------------------------------------------------------------------------

_ARRAY_TYPES: Final[Mapping[str, tuple[type[np.generic], int]]] = {
    **dict.fromkeys(
        ("tagsets", "node_list", "node_parent", "node_best", "seg_node"), (np.int32, 1)
    ),
    **{
        f"{name}_{half}": (np.uint64, 1)
        for name in ("node", "seg_first", "seg_last")
        for half in ("high", "low")
    },
    **dict.fromkeys(("node_v6", "seg_v6"), (np.bool_, 1)),
    "hashes": (np.uint64, 1),
    "offsets": (np.int64, 1),
    "blob": (np.uint8, 1),
    "best": (np.int32, 3),
    "pattern_best": (np.int32, 2),
    "node_prefix": (np.int16, 1),
}


def _check_arrays(arrays: Mapping[str, npt.NDArray[Any]], meta: Mapping[str, Any]) -> None:
    """Raise ValueError unless the arrays and metadata fit together, so that a damaged cache
    can make no lookup fail or loop."""
    if set(arrays) != set(_ARRAY_TYPES) or meta.get("format") != _FORMAT:
        raise ValueError("not a compiled warninglist index of this format")
    if any((a.dtype.type, a.ndim) != _ARRAY_TYPES[name] for name, a in arrays.items()):
        raise ValueError("compiled warninglist arrays of the wrong type")
    lists, rows, nodes = len(meta["lists"]), arrays["hashes"].size, arrays["node_list"].size
    offsets, best = arrays["offsets"], arrays["best"]
    bounds = {
        "tagsets": best.shape[0],
        "node_list": lists,
        "node_best": nodes,
        "seg_node": nodes,
        "node_prefix": 129,
    }
    fits = (
        arrays["tagsets"].shape == (rows,)
        and offsets.shape == (rows + 1,)
        and offsets[0] == 0
        and offsets[-1] == arrays["blob"].size
        and bool(np.all(offsets[1:] >= offsets[:-1]))
        and bool(np.all(arrays["hashes"][1:] >= arrays["hashes"][:-1]))
        and best.shape[1:] == (len(KINDS), 3)
        and bool(np.all((best == _NONE) | ((best >= 0) & (best < lists))))
        and arrays["pattern_best"].shape == (len(meta["patterns"]), len(KINDS))
        and len({a.size for name, a in arrays.items() if name.startswith("node_")}) == 1
        and len({a.size for name, a in arrays.items() if name.startswith("seg_")}) == 1
        and all(
            arrays[name].size == 0 or 0 <= arrays[name].min() <= arrays[name].max() < bound
            for name, bound in bounds.items()
        )
        # parents come first, so climbing from a network to its parents always ends
        and bool(np.all((arrays["node_parent"] >= -1) & (arrays["node_parent"] < np.arange(nodes))))
        and all(0 <= index < lists for index, _ in meta["regexes"])
        and all(r[1] in LIST_TYPES and set(r[2]) <= set(KINDS) for r in meta["lists"])
    )
    if not fits:
        raise ValueError("the compiled warninglist arrays do not fit together")


@dataclass(frozen=True, slots=True)
class _Batch:
    """The values of one check ordered by kind: ``texts[a:b]`` for the span (a, b) of a kind;
    ``order[i]`` is where ``texts[i]`` stands in the caller's batch. ``joined`` is all texts
    joined by the separator, ``texts[i]`` starting at ``joined[starts[i]]``."""

    texts: Sequence[str]
    order: IntArray
    spans: Mapping[str, tuple[int, int]]
    joined: str
    starts: IntArray

    @classmethod
    def of(cls, kinds: Sequence[str], values: Sequence[str]) -> _Batch:
        known = map(_KIND_INDEX.get, kinds, itertools.repeat(-1))
        codes = np.fromiter(known, np.int8, len(kinds))
        while True:
            order = np.argsort(codes, kind="stable")
            edges = np.searchsorted(codes[order], np.arange(len(KINDS) + 1)).tolist()
            texts = _pick(values, order[edges[0] :])
            joined = _SEPARATOR.join(texts)
            if joined.count(_SEPARATOR) == len(texts) - 1 or not texts:
                break
            # No canonical value holds the separator: such values are left out.
            codes[[i for i, value in enumerate(values) if _SEPARATOR in value]] = -1
        # Strings split from one string lie side by side in memory; every later pass over
        # them runs much faster than over the caller's, which may be anywhere.
        texts = joined.split(_SEPARATOR) if texts else []
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1, out=starts[1:])
        spans = {k: (edges[i] - edges[0], edges[i + 1] - edges[0]) for i, k in enumerate(KINDS)}
        return cls(texts, order[edges[0] :], spans, joined, starts)


class _Hits:
    """The best hit so far for each value of a batch: the lowest list index wins."""

    __slots__ = ("best",)

    def __init__(self) -> None:
        self.best: dict[int, tuple[int, str]] = {}

    def offer(self, position: int, list_index: int, reason: str) -> None:
        current = self.best.get(position)
        if current is None or list_index < current[0]:
            self.best[position] = (list_index, reason)


def _url_host(url: str) -> str:
    host = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    return host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]


# The host of each URL in a run of them joined by the separator: after "scheme://" and any
# "user@", up to a port or the path; an IPv6 literal in its brackets.
_URL_HOSTS: Final = re.compile(
    r"(?<![^\x00])[^\x00:/]*://(?:[^\x00/]*@)?(\[[^\x00\]/]*\]|[^\x00:/]*)"
)


def _hosts(batch: _Batch, kind: str) -> Sequence[str]:
    """The host names a hostname list looks at in the values of ``kind``."""
    a, b = batch.spans[kind]
    if kind == "domain":
        return batch.texts[a:b]
    if kind == "email":
        return [email.rpartition("@")[2] for email in batch.texts[a:b]]
    hosts = _URL_HOSTS.findall(batch.joined, int(batch.starts[a]), int(batch.starts[b]))
    return hosts if len(hosts) == b - a else [_url_host(url) for url in batch.texts[a:b]]


def _host_reason(kind: int, host: str, start: int) -> str:
    if kind == _KIND_INDEX["domain"]:
        return f"a subdomain of {host[start:]}"
    part = f"host {host}" if kind == _KIND_INDEX["url"] else f"domain {host}"
    return f"{part} is listed" if start == 0 else f"{part} is a subdomain of {host[start:]}"


def _ipv4_numbers(addresses: Sequence[str]) -> tuple[HashArray, npt.NDArray[np.bool_]]:
    """Dotted-quad addresses as numbers, and which of them read as such."""
    try:
        packed = b"".join(map(_packed_ipv4, addresses))
        valid = np.ones(len(addresses), dtype=bool)
    except (OSError, ValueError):
        blocks = [_parse_block(a) if "/" not in a else None for a in addresses]
        valid = np.array([b is not None and b[0] == 4 for b in blocks], dtype=bool)
        packed = b"".join(b[1].to_bytes(4, "big") if b and b[0] == 4 else bytes(4) for b in blocks)
    return np.frombuffer(packed, dtype=">u4").astype(np.uint64), valid


def _packed_ipv4(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, address)


def _wide(high: HashArray, low: HashArray) -> list[int]:
    """128-bit numbers from their halves."""
    return [h << 64 | lo for h, lo in zip(high.tolist(), low.tolist(), strict=True)]


def _prefix_length(text: str) -> int:
    """The prefix length of an IPv4 "address/prefix" (99 if it is not a number)."""
    prefix = text.partition("/")[2]
    return int(prefix) if prefix.isascii() and prefix.isdigit() and len(prefix) <= 2 else 99


class WarninglistIndex:
    """Warninglists compiled for fast lookups; build one with :meth:`compile` or
    :func:`load_index`. It never changes, so threads may share it.

    ``revision`` is a digest of the compiled lists: their order, metadata and entries.
    """

    def __init__(self, arrays: Mapping[str, npt.NDArray[Any]], meta: Mapping[str, Any]) -> None:
        """Wrap compiled arrays and their metadata, as :meth:`compile` makes them; raises
        ValueError when they do not fit together."""
        _check_arrays(arrays, meta)
        self.revision = str(meta["revision"])
        self._arrays: dict[str, Any] = dict(arrays)
        self._meta = dict(meta)
        self._names = [str(record[0]) for record in meta["lists"]]
        self._kinds_of: dict[str, set[str]] = {list_type: set() for list_type in LIST_TYPES}
        for _, list_type, kinds, _ in meta["lists"]:
            self._kinds_of[list_type].update(kinds)
        self._hashes: HashArray = arrays["hashes"]
        self._tagsets: npt.NDArray[np.int32] = arrays["tagsets"]
        self._offsets: IntArray = arrays["offsets"]
        self._blob = arrays["blob"].data
        self._best: npt.NDArray[np.int32] = arrays["best"]
        self._collided = np.unique(self._hashes[1:][self._hashes[1:] == self._hashes[:-1]])
        # The rows by the top bits of their hash, about one row per bucket.
        bits = max(1, self._hashes.size.bit_length())
        self._shift = np.uint64(64 - bits)
        counts = np.bincount((self._hashes >> self._shift).astype(np.intp), minlength=1 << bits)
        self._directory = np.zeros(counts.size + 1, dtype=np.int32)
        np.cumsum(counts, out=self._directory[1:])
        v4 = ~arrays["seg_v6"]
        self._seg4 = [arrays[f"seg_{edge}_low"][v4] for edge in ("first", "last")]
        self._seg4_node: npt.NDArray[np.int32] = arrays["seg_node"][v4]
        self._seg6 = [
            _wide(arrays[f"seg_{edge}_high"][~v4], arrays[f"seg_{edge}_low"][~v4])
            for edge in ("first", "last")
        ]
        self._seg6_node: list[int] = arrays["seg_node"][~v4].tolist()
        self._patterns = [str(pattern) for pattern in meta["patterns"]]
        # One automaton per distinct set of patterns applying to a kind: a small one scans much
        # faster than the one of all patterns (URLs meet 26 of the MISP patterns, emails 4,941).
        scans: dict[tuple[int, ...], list[str]] = {}
        for kind, column in zip(KINDS, arrays["pattern_best"].T, strict=True):
            if (column != _NONE).any():
                scans.setdefault(tuple(np.flatnonzero(column != _NONE).tolist()), []).append(kind)
        self._scans: list[tuple[Any, list[str]]] = []
        for numbers, kinds in scans.items():
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for number in numbers:
                automaton.add_word(self._patterns[number], number)
            automaton.make_automaton()
            self._scans.append((automaton, kinds))
        self._regexes: dict[str, list[tuple[int, re.Pattern[str], str]]] = {}
        for index, entry in sorted(meta["regexes"]):
            compiled = _compile_regex(entry)
            for kind in meta["lists"][index][2]:
                if compiled is not None:
                    self._regexes.setdefault(kind, []).append((index, compiled, entry))

    @classmethod
    def compile(cls, lists: Iterable[Warninglist]) -> WarninglistIndex:
        """Compile ``lists``; when several hold a value, the earliest of them is reported."""
        ordered = tuple(lists)
        patterns, pattern_best = _compile_substrings(ordered)
        arrays = {**_compile_exact(ordered), **_compile_networks(ordered)}
        meta = {
            "format": _FORMAT,
            "revision": _digest(ordered),
            "lists": [[wl.name, wl.type, sorted(wl.kinds), wl.origin] for wl in ordered],
            "patterns": patterns,
            "regexes": [
                [index, entry]
                for index, wl in enumerate(ordered)
                if wl.type == "regex"
                for entry in wl.entries
                if _compile_regex(entry) is not None
            ],
        }
        return cls({**arrays, "pattern_best": pattern_best}, meta)

    def __len__(self) -> int:
        """The number of compiled lists."""
        return len(self._names)

    def check(self, kind: str, value: str) -> WarninglistHit | None:
        """The first list holding the canonical ``value`` of ``kind``, or None."""
        return self.check_many([kind], [value])[0]

    def check_many(
        self, kinds: Sequence[str], values: Sequence[str]
    ) -> list[WarninglistHit | None]:
        """:meth:`check` of each (kind, value) pair, done for the whole batch at once.

        Values must be canonical, as :func:`~qalqan.domain.observables.normalize` returns
        them; a value of an unknown kind, or one that does not read as its kind, is not found.
        """
        if len(kinds) != len(values):
            raise InvalidInput("kinds and values differ in length", field="kinds")
        batch = _Batch.of(kinds, values)
        hits = _Hits()
        self._exact_hits(batch, hits)
        self._host_hits(batch, hits)
        self._network_hits(batch, hits)
        self._substring_hits(batch, hits)
        for kind, regexes in self._regexes.items():
            for position in range(*batch.spans[kind]):
                for index, pattern, entry in regexes:
                    if pattern.search(batch.texts[position]):
                        hits.offer(int(batch.order[position]), index, f"matches {entry}")
                        break
        found: list[WarninglistHit | None] = [None] * len(values)
        for position, (index, reason) in hits.best.items():
            found[position] = WarninglistHit(self._names[index], reason)
        return found

    def _probe(
        self, hashes: HashArray, kinds: npt.NDArray[np.int8], classes: npt.NDArray[np.int8]
    ) -> tuple[IntArray, IntArray]:
        """The queries whose hash the table holds for a list of their kind and class, and the
        first row holding it."""
        buckets = (hashes >> self._shift).astype(np.intp)
        low, high = self._directory[buckets], self._directory[buckets + 1]
        active = np.flatnonzero(low < high)
        row, end = low[active], high[active]
        found, rows = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        while active.size:
            stored, wanted = self._hashes[row], hashes[active]
            equal = stored == wanted
            found.append(active[equal])
            rows.append(row[equal])
            onward = (stored < wanted) & (row + 1 < end)
            active, row, end = active[onward], row[onward] + 1, end[onward]
        query, row = np.concatenate(found), np.concatenate(rows)
        keep = self._best[self._tagsets[row], kinds[query], classes[query]] != _NONE
        if self._collided.size:
            keep |= np.isin(hashes[query], self._collided)
        return query[keep], row[keep]

    def _verified(self, row: int, text: str, kind: int, match_class: int) -> int:
        """The first list of ``kind`` and ``match_class`` holding ``text``, if a table row from
        ``row`` on holds exactly that text; else ``_NONE``."""
        target, first_hash = _utf8(text), self._hashes[row]
        while row < self._hashes.size and self._hashes[row] == first_hash:
            if self._blob[self._offsets[row] : self._offsets[row + 1]] == target:
                return int(self._best[self._tagsets[row], kind, match_class])
            row += 1
        return _NONE

    def _exact_hits(self, batch: _Batch, hits: _Hits) -> None:
        start, end = batch.spans[KINDS[0]][0], batch.spans[KINDS[-1]][1]
        texts = batch.texts[start:end]
        sizes = [b - a for a, b in batch.spans.values()]
        kinds = np.repeat(np.arange(len(KINDS), dtype=np.int8), sizes)
        # A hostname list matches a URL by its host and an email by its domain, not as a whole.
        by_host = (kinds == _KIND_INDEX["url"]) | (kinds == _KIND_INDEX["email"])
        classes = np.where(by_host, _STRING, _EITHER).astype(np.int8)
        found, rows = self._probe(_full_hashes(texts), kinds, classes)
        for query, row in zip(found.tolist(), rows.tolist(), strict=True):
            index = self._verified(row, texts[query], int(kinds[query]), int(classes[query]))
            if index != _NONE:
                hits.offer(int(batch.order[start + query]), index, "equals a listed value")

    def _host_hits(self, batch: _Batch, hits: _Hits) -> None:
        kinds = [kind for kind in ("domain", "url", "email") if kind in self._kinds_of["hostname"]]
        spans = [batch.spans[kind] for kind in kinds]
        hosts = [host for kind in kinds for host in _hosts(batch, kind)]
        positions = np.concatenate([batch.order[a:b] for a, b in spans] or [batch.order[:0]])
        host_kinds = np.repeat([_KIND_INDEX[k] for k in kinds], [b - a for a, b in spans])
        # A domain as a whole was looked up with the other values; its parents were not.
        whole_from = spans[0][1] - spans[0][0] if kinds[:1] == ["domain"] else 0
        owner, start, hashes = _suffix_hashes(hosts, whole_from)
        classes = np.full(owner.size, _HOSTNAME, dtype=np.int8)
        found, rows = self._probe(hashes, host_kinds[owner].astype(np.int8), classes)
        for query, row in zip(found.tolist(), rows.tolist(), strict=True):
            host_at, offset = int(owner[query]), int(start[query])
            host, code = hosts[host_at], int(host_kinds[host_at])
            index = self._verified(row, host[offset:], code, _HOSTNAME)
            if index != _NONE:
                hits.offer(int(positions[host_at]), index, _host_reason(code, host, offset))

    def _network_hits(self, batch: _Batch, hits: _Hits) -> None:
        for kind, relation in (("ip", "is in"), ("cidr", "is inside")):
            if kind not in self._kinds_of["cidr"]:
                continue
            a, b = batch.spans[kind]
            v6 = [at for at in range(a, b) if ":" in batch.texts[at]]
            for at in v6:
                self._offer_v6(int(batch.order[at]), batch.texts[at], relation, hits)
            rows = np.setdiff1d(np.arange(a, b), v6, assume_unique=True) if v6 else np.arange(a, b)
            if not rows.size or not self._seg4[0].size:
                continue
            texts = batch.texts[a:b] if not v6 else _pick(batch.texts, rows)
            if kind == "ip":
                numbers, valid = _ipv4_numbers(texts)
                prefixes = np.full(len(texts), 32, dtype=np.int64)
            else:
                numbers, valid = _ipv4_numbers([text.partition("/")[0] for text in texts])
                prefixes = np.fromiter(map(_prefix_length, texts), np.int64, len(texts))
            slot = np.maximum(np.searchsorted(self._seg4[0], numbers, side="right") - 1, 0)
            inside = valid & (prefixes <= 32) & (numbers >= self._seg4[0][slot])
            node = np.where(inside & (numbers <= self._seg4[1][slot]), self._seg4_node[slot], -1)
            node = self._climb(node, prefixes)
            for query in np.flatnonzero(node >= 0).tolist():
                chosen = int(self._arrays["node_best"][node[query]])
                reason = f"{texts[query]} {relation} {self._node_text(chosen)}"
                hits.offer(
                    int(batch.order[rows[query]]), int(self._arrays["node_list"][chosen]), reason
                )

    def _climb(self, node: npt.NDArray[np.int32], prefixes: IntArray) -> npt.NDArray[np.int32]:
        """From the innermost network holding each block's first address up to the first
        holding the whole block (-1 for none)."""
        prefix_of, parent_of = self._arrays["node_prefix"], self._arrays["node_parent"]
        while True:
            live = np.flatnonzero(node >= 0)
            up = live[prefix_of[node[live]] > prefixes[live]]
            if not up.size:
                return node
            node[up] = parent_of[node[up]]

    def _offer_v6(self, position: int, value: str, relation: str, hits: _Hits) -> None:
        block = _parse_block(value)
        if block is None or block[0] != 6 or ("/" in value) != (relation == "is inside"):
            return
        _, start, prefix = block
        slot = bisect.bisect_right(self._seg6[0], start) - 1
        if slot < 0 or start > self._seg6[1][slot]:
            return
        node = self._seg6_node[slot]
        while node >= 0 and self._arrays["node_prefix"][node] > prefix:
            node = int(self._arrays["node_parent"][node])
        if node >= 0:
            chosen = int(self._arrays["node_best"][node])
            reason = f"{value} {relation} {self._node_text(chosen)}"
            hits.offer(position, int(self._arrays["node_list"][chosen]), reason)

    def _node_text(self, node: int) -> str:
        start = int(self._arrays["node_high"][node]) << 64 | int(self._arrays["node_low"][node])
        if self._arrays["node_v6"][node]:
            address = socket.inet_ntop(socket.AF_INET6, start.to_bytes(16, "big"))
        else:
            address = socket.inet_ntop(socket.AF_INET, start.to_bytes(4, "big"))
        return f"{address}/{int(self._arrays['node_prefix'][node])}"

    def _substring_hits(self, batch: _Batch, hits: _Hits) -> None:
        for automaton, kinds in self._scans:
            present = [(k, *batch.spans[k]) for k in kinds]
            present = [(k, a, b) for k, a, b in present if a < b]
            if not present:
                continue
            spans = [(a, b) for _, a, b in present]
            rows = np.concatenate([np.arange(a, b) for a, b in spans])
            positions = batch.order[rows]
            codes = np.repeat([_KIND_INDEX[k] for k, _, _ in present], [b - a for a, b in spans])
            # The text of each span of kinds as it stands in the joined batch.
            pieces = [batch.joined[batch.starts[a] : batch.starts[b] - 1] for a, b in spans]
            lengths = batch.starts[rows + 1] - batch.starts[rows]
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            ends, numbers = [], []
            for end, number in automaton.iter(_ascii_lower(_SEPARATOR.join(pieces))):
                ends.append(end)
                numbers.append(number)
            owner = np.searchsorted(starts, np.array(ends, dtype=np.int64), side="right") - 1
            best = self._arrays["pattern_best"][np.array(numbers, dtype=np.int64), codes[owner]]
            for query in np.flatnonzero(best != _NONE).tolist():
                pattern = self._patterns[numbers[query]]
                reason = f"contains {pattern!r}"
                hits.offer(int(positions[owner[query]]), int(best[query]), reason)


# --- loading, with a cache -----------------------------------------------------------------


def _cache_key(custom: Sequence[Warninglist]) -> str:
    try:
        version = importlib.metadata.version("pymispwarninglists")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    files = [[p.parent.name, p.stat().st_size, p.stat().st_mtime_ns] for p in _misp_list_files()]
    return _digest(custom, version, files)


def _read_cache(path: Path, key: str) -> WarninglistIndex | None:
    try:
        # Opened here, not by numpy, which leaves the file open when it is not an archive.
        with path.open("rb") as file, np.load(file, allow_pickle=False) as stored:
            meta = orjson.loads(stored["meta"].tobytes())
            if not isinstance(meta, dict) or meta.get("key") != key:
                return None
            arrays = {name: stored[name] for name in stored.files if name != "meta"}
        return WarninglistIndex(arrays, meta)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, index: WarninglistIndex, key: str) -> None:
    meta = np.frombuffer(orjson.dumps({**index._meta, "key": key}), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".warninglists-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, meta=meta, **index._arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _release_freed_memory() -> None:
    """Compiling allocates and frees a few hundred MB of small objects; glibc keeps that memory
    mapped unless asked to return it. Elsewhere there is no such call and nothing to do."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        return


def load_index(cache_dir: Path, custom: Sequence[Warninglist] = ()) -> WarninglistIndex:
    """The index of the ``custom`` lists (first) and the MISP lists: read from the cache in
    ``cache_dir`` if that was built from the same lists, else compiled and cached.

    The cache is keyed by the ``pymispwarninglists`` version and files and by a digest of the
    custom lists, and replaced atomically. A cache that cannot be read is rebuilt; one that
    cannot be written costs the next start a compilation, nothing else.
    """
    path = Path(cache_dir) / _CACHE_NAME
    key = _cache_key(custom)
    index = _read_cache(path, key)
    if index is None:
        index = WarninglistIndex.compile([*custom, *misp_lists()])
        _release_freed_memory()
        with contextlib.suppress(OSError):
            _write_cache(path, index, key)
    return index
