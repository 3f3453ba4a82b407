"""A large node shared by ``objects_page`` and ``observable_lookup``: a million stored object
versions with their observable index, six orgs, two sharing groups, and a running server.

Importing a million objects through the importer would take minutes, so the rows are written
directly with SQLAlchemy Core bulk inserts, in the shape the importer writes them: verbatim STIX
JSON, its SHA-256, the handling columns, strictly increasing ``date_added`` values after the
node's clock (which is moved past them), a few superseded, revoked and withdrawn versions, and
one or two observables per indicator or cyber-observable, normalized as the importer does.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, func, insert, select, update

from benchmarks._common import Context, running_server, seeded_uuid, stix_stamp
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import Observable, normalize
from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp, parse_timestamp
from qalqan.instance import Instance
from qalqan.policy import visible_to
from qalqan.store.clock import local_clock
from qalqan.store.tables import nodes, orgs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.testing import TestNode, fresh_instance

__all__ = ["LargeStore", "large_store", "visible_latest"]

SEED = 1_000_003
_CHUNK = 25_000
_SAMPLE = 2_000
_ORGS = (("CERT-B", "UZ"), ("CERT-C", "KG"), ("CERT-D", "TJ"), ("CERT-E", "TM"), ("CERT-F", "AZ"))
_GROUPS = (("central", "CERT-A", ("CERT-B", "CERT-C")), ("southern", "CERT-D", ("CERT-E",)))
READER = "analyst@b.test"
_TYPES = (
    ("indicator", 70),
    ("ipv4-addr", 5),
    ("domain-name", 5),
    ("file", 5),
    ("malware", 5),
    ("attack-pattern", 5),
    ("threat-actor", 5),
)
_DISTRIBUTIONS = (
    (Distribution.NODE, 35),
    (Distribution.ALL, 10),
    (Distribution.CONNECTED, 10),
    (Distribution.ORGANIZATION, 30),
    (Distribution.SHARING_GROUP, 15),
)
_INDICATOR_KINDS = (("ip", 30), ("cidr", 4), ("domain", 26), ("sha256", 20), ("md5", 20))
_PREFIXES = (16, 20, 22, 24, 24, 24, 26, 28)
_NEW_VERSION, _REVOKED, _WITHDRAWN = 0.03, 0.005, 0.002
_DAY_US = 86_400_000_000
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TLDS = ("com", "net", "org", "info", "kz", "uz", "kg", "tj", "io")
_PATTERN_PATHS = {
    "ip": "ipv4-addr:value",
    "cidr": "ipv4-addr:value",
    "domain": "domain-name:value",
    "sha256": "file:hashes.'SHA-256'",
    "md5": "file:hashes.MD5",
}


@dataclass
class LargeStore:
    """The loaded node, the org whose view is measured, and values known to be indexed."""

    instance: Instance
    base_url: str
    reader: Principal
    reader_key: str
    versions: int
    observables: int
    visible: int
    indexed_values: list[str]
    networks: list[str]


def large_store(ctx: Context) -> LargeStore:
    """The shared large node, built and served on first use."""
    return ctx.shared("large_store", _build)


def visible_latest(principal: Principal) -> Select[Any]:
    """The rows ``GET /objects`` lists for ``principal`` (no cursor, no limit, no order)."""
    return (
        select(ov.c.date_added, ov.c.stix_id, ov.c.content, orgs.c.name, orgs.c.country)
        .join(orgs, orgs.c.id == ov.c.owner_org_id)
        .where(
            visible_to(principal, ov),
            ov.c.is_latest.is_(True),
            ov.c.revoked.is_(False),
            ov.c.withdrawn.is_(False),
        )
    )


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights)[0]


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(_LETTERS, k=rng.randint(5, 12)))


class _Generator:
    """Deterministic rows: objects with handling, their observables, and samples of both."""

    def __init__(self, rng: random.Random, org_ids: list[str], groups: dict[str, list[str]]):
        self.rng = rng
        self.org_ids = org_ids
        # For each org, the sharing groups it may publish to.
        self.groups_of = {
            org: [g for g, members in groups.items() if org in members] for org in org_ids
        }
        self.indexed_values: list[str] = []
        self.networks: list[str] = []
        self.observable_count = 0
        self.network_count = 0
        # The share of indicators that name a second value, so that there are about as many
        # observables as objects: cyber-observables name one value, other objects none.
        weights = dict(_TYPES)
        total = sum(weights.values())
        indicators = weights["indicator"] / total
        scos = (weights["ipv4-addr"] + weights["domain-name"] + weights["file"]) / total
        self.second_value = (1 - scos - indicators) / indicators

    def _sample(self, reservoir: list[str], value: str, seen: int) -> None:
        """Reservoir sampling: each value seen so far is kept with the same chance."""
        if len(reservoir) < _SAMPLE:
            reservoir.append(value)
        else:
            slot = self.rng.randrange(seen)
            if slot < _SAMPLE:
                reservoir[slot] = value

    def observable(self, kind: str) -> Observable:
        rng = self.rng
        if kind in ("ip", "cidr"):
            address = str(ipaddress.IPv4Address(rng.randrange(0x01000000, 0xDF000000)))
            if kind == "ip":
                found = normalize("ip", address)
            else:
                found = normalize("cidr", f"{address}/{rng.choice(_PREFIXES)}")
                self.network_count += 1
                self._sample(self.networks, found.value, self.network_count)
        elif kind == "domain":
            found = normalize("domain", f"{_label(rng)}.{_label(rng)}.{rng.choice(_TLDS)}")
        else:
            digits = 64 if kind == "sha256" else 32
            found = normalize(kind, f"{rng.getrandbits(digits * 4):0{digits}x}")
        self.observable_count += 1
        self._sample(self.indexed_values, found.value, self.observable_count)
        return found

    def handling(self, owner: str) -> tuple[TLP, Distribution, str | None]:
        rng = self.rng
        distribution: Distribution = _weighted(rng, _DISTRIBUTIONS)
        group = None
        if distribution is Distribution.SHARING_GROUP:
            choices = self.groups_of[owner]
            if choices:
                group = rng.choice(choices)
            else:
                distribution = Distribution.ORGANIZATION
        if distribution in (Distribution.ORGANIZATION, Distribution.SHARING_GROUP):
            tlp = rng.choice((TLP.AMBER, TLP.AMBER_STRICT, TLP.RED))
        else:
            tlp = rng.choice((TLP.CLEAR, TLP.GREEN, TLP.AMBER))
        return tlp, distribution, group

    def stix_object(self, type_name: str) -> tuple[dict[str, Any], list[Observable]]:
        """A small valid STIX 2.1 object of ``type_name`` and the observables it names."""
        rng = self.rng
        obj: dict[str, Any] = {
            "type": type_name,
            "spec_version": "2.1",
            "id": f"{type_name}--{seeded_uuid(rng)}",
        }
        found: list[Observable] = []
        if type_name == "ipv4-addr":
            found.append(self.observable("cidr" if rng.random() < 0.1 else "ip"))
            obj["value"] = found[0].value
            return obj, found
        if type_name == "domain-name":
            found.append(self.observable("domain"))
            obj["value"] = found[0].value
            return obj, found
        if type_name == "file":
            found.append(self.observable("sha256"))
            obj["hashes"] = {"SHA-256": found[0].value}
            return obj, found
        stamp = stix_stamp(rng)
        obj.update(created=stamp, modified=stamp)
        if type_name == "indicator":
            found.append(self.observable(_weighted(rng, _INDICATOR_KINDS)))
            if rng.random() < self.second_value:
                found.append(self.observable(rng.choice(("domain", "sha256", "md5"))))
            obj.update(
                name=f"{found[0].kind} {found[0].value}",
                pattern=" OR ".join(f"[{_PATTERN_PATHS[o.kind]} = '{o.value}']" for o in found),
                pattern_type="stix",
                valid_from=stamp,
            )
        elif type_name == "malware":
            obj.update(name=f"{_label(rng).title()}Loader", is_family=True)
        else:
            obj["name"] = _label(rng).title()
        return obj, found


def _row(
    obj: dict[str, Any], date_added: int, owner: str, handling: tuple[TLP, Distribution, str | None]
) -> dict[str, Any]:
    created = obj.get("created")
    modified = obj.get("modified")
    tlp, distribution, group = handling
    return {
        "date_added": date_added,
        "stix_id": obj["id"],
        "type": obj["type"],
        "spec_version": "2.1",
        "created": parse_timestamp(created) if created else None,
        "modified": parse_timestamp(modified) if modified else 0,
        "is_latest": True,
        "revoked": obj.get("revoked") is True,
        "withdrawn": False,
        "name": obj.get("name"),
        "content": orjson.dumps(obj).decode(),
        "owner_org_id": owner,
        "tlp": int(tlp),
        "distribution": distribution.value,
        "sharing_group_id": group,
        "source": "feed:benchmark",
    }


def _chunks(
    gen: _Generator, count: int, first_date_added: int
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Version rows and observable rows, a chunk at a time; new versions stay in their chunk."""
    rng = gen.rng
    date_added = first_date_added
    for start in range(0, count, _CHUNK):
        rows: list[dict[str, Any]] = []
        named: list[list[Observable]] = []
        objects: list[dict[str, Any]] = []
        for _ in range(min(_CHUNK, count - start)):
            if rows and rng.random() < _NEW_VERSION:
                old = rng.randrange(len(rows))
                if rows[old]["is_latest"] and rows[old]["modified"]:
                    obj = dict(objects[old])
                    obj["modified"] = format_timestamp(rows[old]["modified"] + _DAY_US)
                    previous = rows[old]
                    handling = (
                        TLP(previous["tlp"]),
                        Distribution(previous["distribution"]),
                        previous["sharing_group_id"],
                    )
                    rows.append(_row(obj, date_added, previous["owner_org_id"], handling))
                    previous["is_latest"] = False
                    objects.append(obj)
                    named.append(named[old])
                    date_added += 1
                    continue
            obj, found = gen.stix_object(_weighted(rng, _TYPES))
            if "modified" in obj and rng.random() < _REVOKED:
                obj["revoked"] = True
            owner = rng.choice(gen.org_ids)
            row = _row(obj, date_added, owner, gen.handling(owner))
            row["withdrawn"] = rng.random() < _WITHDRAWN
            rows.append(row)
            objects.append(obj)
            named.append(found)
            date_added += 1
        observable_rows = [
            {
                "version_id": row["date_added"],
                "kind": o.kind,
                "value": o.value,
                "ip_start": o.ip_start,
                "ip_end": o.ip_end,
            }
            for row, found in zip(rows, named, strict=True)
            for o in found
        ]
        yield rows, observable_rows


def _build(ctx: Context) -> LargeStore:
    count = ctx.size(1_000_000, 50_000)
    data_dir = ctx.work_dir / "large-instance"
    instance = ctx.resources.enter_context(fresh_instance(data_dir))
    node = TestNode.create(instance)
    for name, country in _ORGS:
        node.add_org(name, country)
    groups = {}
    for name, owner, members in _GROUPS:
        group_id = node.add_group(name, owner, list(members))
        groups[group_id] = [node.org_ids[owner], *(node.org_ids[m] for m in members)]
    reader_key = node.add_user(READER, "CERT-B")
    reader = node.principals[READER]

    print(f"  building the large store: {count:,} object versions (seed {SEED}) ...", flush=True)
    started = time.perf_counter()
    gen = _Generator(random.Random(SEED), list(node.org_ids.values()), groups)
    with instance.begin() as conn:
        first = local_clock(conn) + 1
    versions = observables = 0
    for rows, observable_rows in _chunks(gen, count, first):
        with instance.begin() as conn:
            conn.execute(insert(ov), rows)
            conn.execute(insert(obs), observable_rows)
        versions += len(rows)
        observables += len(observable_rows)
    with instance.begin() as conn:
        conn.execute(update(nodes).where(nodes.c.is_local).values(clock=first + versions - 1))
        visible = conn.execute(
            select(func.count()).select_from(visible_latest(reader).subquery())
        ).scalar_one()
        total = conn.execute(select(func.count()).select_from(ov)).scalar_one()
    size_mb = (data_dir / "qalqan.db").stat().st_size / 1e6
    print(
        f"  {total:,} object versions ({visible:,} latest ones visible to {READER}), "
        f"{observables:,} observables, {size_mb:,.0f} MB, "
        f"built in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    base_url = ctx.resources.enter_context(running_server(data_dir))
    return LargeStore(
        instance=instance,
        base_url=base_url,
        reader=reader,
        reader_key=reader_key,
        versions=total,
        observables=observables,
        visible=visible,
        indexed_values=gen.indexed_values,
        networks=gen.networks,
    )
