"""Evidence of a TLP:RED case follows the case: inside the participating orgs only the people
named in the case (and admins) see, add or download it; anyone else is told nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from qalqan.cases import service
from qalqan.cases.service import CaseChanges, CaseSpec
from qalqan.domain.principal import Role
from qalqan.errors import NotFound
from qalqan.evidence import service as evidence
from qalqan.evidence.service import EvidenceMeta
from qalqan.evidence.storage import EvidenceStorage
from qalqan.testing import TestNode

LEAD, NAMED, UNNAMED = "lead@a.test", "named@b.test", "other@b.test"


async def _chunks() -> AsyncIterator[bytes]:
    yield b"memory image of the informant's phone"


def test_red_case_evidence_is_for_the_people_named(node: TestNode) -> None:
    node.add_org("CERT-B")
    node.add_user(LEAD, "CERT-A")
    node.add_user(NAMED, "CERT-B")
    node.add_user(UNNAMED, "CERT-B")
    node.add_user("admin@b.test", "CERT-B", Role.ORG_ADMIN)
    lead = node.principals[LEAD]
    storage = EvidenceStorage(node.instance.settings.evidence_dir)
    received = asyncio.run(storage.receive(_chunks(), 1 << 20))
    with node.instance.begin() as conn:
        case = service.create_case(conn, lead, CaseSpec(title="Informant", tlp="red"))
        service.add_participant(conn, lead, case.id, "CERT-B", "contributor")
        service.update_case(conn, lead, case.id, CaseChanges(assignees=[NAMED]))
        item = evidence.add_evidence(
            conn, node.principals[NAMED], case.id, received, EvidenceMeta(name="phone.bin")
        )
        for who in (LEAD, NAMED, "admin@b.test"):
            assert evidence.evidence_details(conn, node.principals[who], item.id).item.id == item.id
        for reach in (
            lambda: evidence.evidence_details(conn, node.principals[UNNAMED], item.id),
            lambda: evidence.case_evidence(conn, node.principals[UNNAMED], case.id, None, 10),
            lambda: evidence.add_evidence(
                conn, node.principals[UNNAMED], case.id, received, EvidenceMeta(name="x")
            ),
        ):
            with pytest.raises(NotFound):
                reach()
