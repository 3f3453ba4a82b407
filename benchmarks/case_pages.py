"""Case lists and case pages on a node holding 100,000 cases and 1,000,000 tasks.

Twelve orgs work the cases: each case has an owner (lead) and one to three other participants,
about ten tasks (some overdue), a few labels, timeline entries, comments and observables. Rows
are bulk-inserted in the shape the case service writes them. Measured over HTTP against
``qalqan serve`` as an analyst of one org (it takes part in about a quarter of the cases):

- ``GET /api/v1/cases`` with filters — none, ``status``, ``label``, ``overdue``, ``text`` and a
  second page by cursor — p50 per filter;
- ``GET /api/v1/cases/{id}`` (the case with its tasks, timeline, comments and observables with
  their correlation summaries) for 200 cases the analyst may see: p50.

Baseline: what TheHive 4 users report at 5,000-15,000 cases (4 to 12 s per list), and,
measured in the same run, the same first list page the naive way on SQLite: every case read
with its participants, filtered and sorted in Python.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import insert, select

from benchmarks._common import Context, Row, running_server
from qalqan.store.tables import (
    case_labels,
    case_observables,
    case_participants,
    case_tasks,
    case_timeline,
    cases,
    users,
)
from qalqan.testing import TestNode, fresh_instance

__all__ = ["run"]

NAME = "case_pages"
SEED = 7_000_007
ORGS = 12
TARGET_LIST_MS = 50.0
TARGET_PAGE_MS = 100.0
_READER = "analyst@cases.test"
_LABELS = ("ransomware", "phishing", "ddos", "data-leak", "fraud", "apt", "hospital", "bank")
_STATUSES = ("new", "in-progress", "on-hold", "resolved", "closed")
_DAY_US = 86_400_000_000
_NOW_US = 1_767_225_600_000_000 + 300 * _DAY_US


def _build(ctx: Context) -> tuple[Any, str, list[str]]:
    count = ctx.size(100_000, 5_000)
    tasks_per_case = 10
    data_dir = ctx.work_dir / "cases-instance"
    instance = ctx.resources.enter_context(fresh_instance(data_dir))
    node = TestNode.create(instance, "CERT-1", "KZ")
    for i in range(2, ORGS + 1):
        node.add_org(f"CERT-{i}", "UZ")
    key = node.add_user(_READER, "CERT-3")
    reader_org = node.org_ids["CERT-3"]
    org_ids = [node.org_ids[f"CERT-{i}"] for i in range(1, ORGS + 1)]
    rng = random.Random(SEED)
    visible: list[str] = []
    print(f"  building: {count:,} cases, {count * tasks_per_case:,} tasks ...", flush=True)
    started = time.perf_counter()
    for start in range(0, count, 10_000):
        rows: dict[str, list[dict[str, Any]]] = {
            "cases": [], "participants": [], "labels": [], "tasks": [], "timeline": [],
            "observables": [],
        }  # fmt: skip
        for number in range(start + 1, min(start + 10_000, count) + 1):
            case_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            updated = _NOW_US - rng.randrange(365 * _DAY_US)
            owner = rng.choice(org_ids)
            members = {owner, *rng.sample(org_ids, rng.randint(1, 3))}
            if reader_org in members:
                visible.append(case_id)
            rows["cases"].append(
                {"id": case_id, "number": number, "title": f"Case {number}: "
                 f"{rng.choice(_LABELS)} against {rng.choice(('hospitals', 'banks', 'ISPs'))}",
                 "description": "Cross-border incident worked by several member CERTs.",
                 "severity": rng.randint(1, 4), "tlp": 2, "pap": 2,
                 "status": rng.choice(_STATUSES), "resolution": None, "owner_org_id": owner,
                 "template": None, "attack_techniques": "[]", "custom_fields": "{}",
                 "created_at": updated - _DAY_US, "created_by": None, "updated_at": updated,
                 "closed_at": None}
            )  # fmt: skip
            for org in members:
                rows["participants"].append(
                    {"case_id": case_id, "org_id": org, "added_at": updated,
                     "role": "lead" if org == owner else "contributor", "added_by": None}
                )  # fmt: skip
            for label in rng.sample(_LABELS, 2):
                rows["labels"].append({"case_id": case_id, "label": label})
            for position in range(tasks_per_case):
                done = rng.random() < 0.6
                rows["tasks"].append(
                    {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                     "case_id": case_id, "title": f"Task {position}", "description": "",
                     "status": "done" if done else "open", "org_id": rng.choice(list(members)),
                     "assignee_user_id": None, "due_at": updated + rng.randrange(-30, 60) * _DAY_US,
                     "position": position, "created_at": updated, "created_by": None,
                     "updated_at": updated, "closed_at": updated if done else None}
                )  # fmt: skip
            for i in range(3):
                rows["timeline"].append(
                    {"case_id": case_id, "at": updated + i, "event_time": None, "kind": "auto",
                     "action": "case.updated", "actor_user_id": None, "actor_org_id": owner,
                     "text": "changed", "detail": "{}"}
                )  # fmt: skip
            for host in rng.sample(range(65_536), 2):
                rows["observables"].append(
                    {"case_id": case_id, "kind": "ip", "value": f"198.51.{host >> 8}.{host & 255}",
                     "stix_id": None, "note": "", "added_at": updated, "added_by": None,
                     "added_by_org": owner}
                )  # fmt: skip
        with instance.begin() as conn:
            conn.execute(insert(cases), rows["cases"])
            conn.execute(insert(case_participants), rows["participants"])
            conn.execute(insert(case_labels), rows["labels"])
            conn.execute(insert(case_tasks), rows["tasks"])
            conn.execute(insert(case_timeline), rows["timeline"])
            conn.execute(insert(case_observables), rows["observables"])
    with instance.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"  built in {time.perf_counter() - started:.0f} s; "
          f"{len(visible):,} cases visible to the analyst", flush=True)  # fmt: skip
    return instance, key, visible


def _naive_first_page(instance: Any, org_id: str) -> float:
    """Every case and its participants read, filtered by org in Python, sorted, cut."""
    start = time.perf_counter()
    with instance.engine.connect() as conn:
        members: dict[str, set[str]] = {}
        for case_id, org in conn.execute(select(case_participants.c.case_id,
                                                case_participants.c.org_id)):  # fmt: skip
            members.setdefault(case_id, set()).add(org)
        rows = [r for r in conn.execute(select(cases)) if org_id in members.get(r.id, ())]
        rows.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
        rows[:50]
    return time.perf_counter() - start


def run(ctx: Context) -> list[Row]:
    """Build the node, then time filtered lists and case pages."""
    instance, key, visible = ctx.shared("case_node", _build)
    headers = {"Authorization": f"Bearer {key}"}
    filters: dict[str, dict[str, str]] = {
        "none": {},
        "status": {"status": "in-progress"},
        "label": {"label": "hospital"},
        "overdue": {"overdue": "true"},
        "text": {"text": "banks"},
        "status+label": {"status": "new", "label": "ransomware"},
    }
    repeats = ctx.size(30, 10)
    with (
        running_server(instance.settings.data_dir) as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=120) as client,
    ):

        def timed(path: str, params: dict[str, str] | None = None) -> tuple[float, Any]:
            start = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            return elapsed, response.json()

        list_ms: dict[str, float] = {}
        for name, params in filters.items():
            timed("/api/v1/cases", params)
            samples = [timed("/api/v1/cases", params)[0] for _ in range(repeats)]
            list_ms[name] = statistics.median(samples) * 1000
        first = timed("/api/v1/cases", {})[1]
        second = [timed("/api/v1/cases", {"cursor": first["next"]})[0] for _ in range(repeats)]
        list_ms["second page"] = statistics.median(second) * 1000
        rng = random.Random(SEED + 1)
        chosen = rng.sample(visible, min(ctx.size(200, 40), len(visible)))
        for case_id in chosen[:10]:
            timed(f"/api/v1/cases/{case_id}")
        page_ms = statistics.median(timed(f"/api/v1/cases/{c}")[0] for c in chosen) * 1000
    org_id = _reader_org(instance)
    naive_ms = _naive_first_page(instance, org_id) * 1000
    worst = max(list_ms.values())
    for name, ms in list_ms.items():
        print(f"  case list, {name:<13}: p50 {ms:7.2f} ms")
    print(f"  case page (tasks, timeline, comments, observables): p50 {page_ms:7.2f} ms")
    print(f"  naive first page (everything read, filtered in Python): {naive_ms:,.0f} ms")
    return [
        Row(NAME, "case list p50 (worst filter)", f"{worst:.2f} ms", f"{naive_ms:,.0f} ms naive",
            naive_ms / list_ms["none"], f"<= {TARGET_LIST_MS:.0f} ms", worst <= TARGET_LIST_MS),
        Row(NAME, "case page p50", f"{page_ms:.2f} ms", "4-12 s (TheHive 4, reported)", None,
            f"<= {TARGET_PAGE_MS:.0f} ms", page_ms <= TARGET_PAGE_MS),
    ]  # fmt: skip


def _reader_org(instance: Any) -> str:
    with instance.engine.connect() as conn:
        return str(conn.execute(select(users.c.org_id).where(users.c.email == _READER)).scalar())
