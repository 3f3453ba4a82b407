"""A demo instance: member-state CERTs, a sharing group, users of every role and intelligence
at every TLP and distribution level. Generated here, deterministically; nothing is read from
outside the package."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from qalqan import accounts
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.sighting_reports import submit_sightings
from qalqan.policy import handling_problem
from qalqan.store import accounts as store
from qalqan.store.tables import object_versions

__all__ = ["DemoInstance", "create_demo"]

# (name, country): the center's hub org first, then member-state CERTs.
DEMO_ORGS: tuple[tuple[str, str], ...] = (
    ("Center-CERT", "KZ"),
    ("CERT-UZ", "UZ"),
    ("CERT-KG", "KG"),
    ("CERT-TJ", "TJ"),
    ("CNCERT-Demo", "CN"),
    ("CERT-RU-Demo", "RU"),
)
_STAMP = "2026-01-15T08:00:00.000Z"
_MALWARE = ("Lumma Stealer", "Mirai", "AgentTesla", "LockBit", "Emotet", "Cobalt Strike")
_TLD = ("example", "test", "invalid")
# Infrastructure of one campaign that several members report: what correlation is for.
_CAMPAIGN = (
    ("198.51.100.66", "[ipv4-addr:value = '198.51.100.66']"),
    ("update-cdn.malicious.example", "[domain-name:value = 'update-cdn.malicious.example']"),
    ("http://update-cdn.malicious.example/payload.bin",
     "[url:value = 'http://update-cdn.malicious.example/payload.bin']"),
)  # fmt: skip
# A few ATT&CK techniques as reference data, so the techniques view has something to count.
_TECHNIQUES = (
    ("T1566", "Phishing", "initial-access"),
    ("T1190", "Exploit Public-Facing Application", "initial-access"),
    ("T1059", "Command and Scripting Interpreter", "execution"),
    ("T1071", "Application Layer Protocol", "command-and-control"),
    ("T1486", "Data Encrypted for Impact", "impact"),
    ("T1498", "Network Denial of Service", "impact"),
)
_CAMPAIGN_SHARE = 0.15


@dataclass(slots=True)
class DemoInstance:
    """The keys of the demo users, by email (shown once, on the demo console only)."""

    keys: dict[str, str] = field(default_factory=dict)
    objects: int = 0


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pattern(rng: random.Random, i: int) -> tuple[str, str]:
    kind = i % 5
    if kind == 0:
        value = f"198.51.100.{rng.randint(1, 254)}"
        return value, f"[ipv4-addr:value = '{value}']"
    if kind == 1:
        value = f"c2-{rng.randint(100, 999)}.malicious.{rng.choice(_TLD)}"
        return value, f"[domain-name:value = '{value}']"
    if kind == 2:
        value = f"http://phish-{rng.randint(100, 999)}.{rng.choice(_TLD)}/login.php"
        return value, f"[url:value = '{value}']"
    if kind == 3:
        value = f"{rng.getrandbits(256):064x}"
        return value, f"[file:hashes.'SHA-256' = '{value}']"
    value = f"203.0.113.{rng.randint(0, 15) * 16}/28"
    return value, f"[ipv4-addr:value = '{value}']"


def _techniques(rng: random.Random, identity: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "attack-pattern",
            "spec_version": "2.1",
            "id": f"attack-pattern--{_uuid(rng)}",
            "created": _STAMP,
            "modified": _STAMP,
            "created_by_ref": identity,
            "name": name,
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": tactic}],
            "external_references": [
                {
                    "source_name": "mitre-attack",
                    "external_id": attack_id,
                    "url": f"https://attack.mitre.org/techniques/{attack_id}/",
                }
            ],
            "object_marking_refs": [TLP.CLEAR.marking_id],
        }
        for attack_id, name, tactic in _TECHNIQUES
    ]


def _intel(
    rng: random.Random, identity: str, tlp: TLP, count: int, techniques: list[str]
) -> list[dict[str, Any]]:
    family = rng.choice(_MALWARE)
    malware_id = f"malware--{_uuid(rng)}"
    common = {
        "spec_version": "2.1",
        "created": _STAMP,
        "modified": _STAMP,
        "created_by_ref": identity,
        "object_marking_refs": [tlp.marking_id],
    }
    objects: list[dict[str, Any]] = [
        {"type": "malware", "id": malware_id, "name": family, "is_family": True, **common}
    ]
    for i in range(count):
        if rng.random() < _CAMPAIGN_SHARE:
            value, pattern = rng.choice(_CAMPAIGN)
        else:
            value, pattern = _pattern(rng, i)
        indicator_id = f"indicator--{_uuid(rng)}"
        objects.append(
            {
                "type": "indicator",
                "id": indicator_id,
                "name": f"{family} infrastructure: {value}",
                "pattern": pattern,
                "pattern_type": "stix",
                "valid_from": _STAMP,
                "confidence": rng.choice((30, 50, 70, 90)),
                "labels": ["malicious-activity"],
                **common,
            }
        )
        objects.append(
            {
                "type": "relationship",
                "id": f"relationship--{_uuid(rng)}",
                "relationship_type": "indicates",
                "source_ref": indicator_id,
                "target_ref": malware_id,
                **common,
            }
        )
    objects.append(
        {
            "type": "relationship",
            "id": f"relationship--{_uuid(rng)}",
            "relationship_type": "uses",
            "source_ref": malware_id,
            "target_ref": rng.choice(techniques),
            **common,
        }
    )
    objects.append(
        {
            "type": "report",
            "id": f"report--{_uuid(rng)}",
            "name": f"{family} activity against member-state networks",
            "description": f"Infrastructure of {family} seen by the reporting CERT.",
            "report_types": ["threat-report"],
            "published": _STAMP,
            "object_refs": [o["id"] for o in objects],
            **common,
        }
    )
    return objects


def create_demo(conn: Connection, data_dir: Path, seed: int = 2026) -> DemoInstance:
    """Fill an empty node with demo orgs, users, a sharing group and intelligence."""
    rng = random.Random(seed)
    demo = DemoInstance()
    boot = accounts.bootstrap(
        conn,
        data_dir,
        node_name="qalqan-demo",
        org_name=DEMO_ORGS[0][0],
        country=DEMO_ORGS[0][1],
        admin_email="admin@center.demo",
    )
    demo.keys[boot.admin.email] = boot.key.secret
    orgs = [boot.org] + [accounts.add_org(conn, None, n, c) for n, c in DEMO_ORGS[1:]]
    group = accounts.create_group(
        conn,
        None,
        "Central Asia Energy",
        orgs[0].id,
        [o.id for o in orgs[1:4]],
        "Energy-sector operators' CERTs of the region",
    )
    roles = (Role.ORG_ADMIN, Role.ANALYST, Role.READER, Role.SYNC)
    for org in orgs:
        slug = org.name.lower()
        for role in roles:
            user = accounts.add_user(conn, None, f"{role.value}@{slug}.demo", org.id, role)
            demo.keys[user.email] = accounts.create_key(conn, None, user.id, "demo").secret
    center = accounts.system_principal(store.get_org(conn, orgs[0].id), conn)
    reference = _techniques(rng, orgs[0].identity_id)
    import_objects(
        conn,
        center,
        reference,
        HandlingRequest(TLP.CLEAR, Distribution.NODE),
        source="reference:attack",
    )
    techniques = [t["id"] for t in reference]
    for org in orgs:
        principal = accounts.system_principal(store.get_org(conn, org.id), conn)
        for tlp in TLP:
            for distribution in Distribution:
                group_id = group.id if distribution is Distribution.SHARING_GROUP else None
                if handling_problem(tlp, distribution, group_id):
                    continue
                if group_id and org.id not in (group.owner_org_id, *group.member_org_ids):
                    continue
                report = import_objects(
                    conn,
                    principal,
                    _intel(rng, org.identity_id, tlp, 4, techniques),
                    HandlingRequest(tlp, distribution, group_id),
                    source="demo",
                )
                demo.objects += report.created
    demo.objects += _sightings(conn, rng, orgs)
    return demo


def _sightings(conn: Connection, rng: random.Random, orgs: list[Any]) -> int:
    """Members report seeing each other's node-wide indicators, shared back to their owners."""
    shared = [
        (stix_id, owner)
        for stix_id, owner in conn.execute(
            select(object_versions.c.stix_id, object_versions.c.owner_org_id)
            .where(
                object_versions.c.type == "indicator",
                object_versions.c.distribution == Distribution.NODE.value,
                object_versions.c.is_latest.is_(True),
            )
            .order_by(object_versions.c.date_added)
        )
    ]
    stored = 0
    for org in orgs:
        principal = accounts.system_principal(store.get_org(conn, org.id), conn)
        others = [stix_id for stix_id, owner in shared if owner != org.id]
        reports = [
            {
                "sighting_of_ref": stix_id,
                "count": rng.randint(1, 40),
                "first_seen": "2026-01-20T00:00:00Z",
                "last_seen": "2026-01-21T06:00:00Z",
                "kind": "false-positive" if rng.random() < 0.1 else "sighting",
            }
            for stix_id in rng.sample(others, min(3, len(others)))
        ]
        stored += len(submit_sightings(conn, principal, reports).accepted)
    return stored
