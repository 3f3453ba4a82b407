"""Listing filters by distribution and sharing group stay inside what the caller may see."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qalqan.testing import TestNode, assert_problem, indicator


def test_filter_by_distribution_and_group(node: TestNode, client: TestClient) -> None:
    node.add_org("CERT-B")
    key_b = node.add_user("analyst@b.test", "CERT-B")
    group = node.add_group("energy", "CERT-A", ["CERT-B"])
    admin = {"Authorization": f"Bearer {node.keys['admin@a.test']}"}
    made = {}
    for dist in ("organization", "node", "sharing_group"):
        obj = indicator(f"198.51.100.{len(made) + 80}")
        params = {"tlp": "amber", "distribution": dist}
        if dist == "sharing_group":
            params["sharing_group"] = group
        r = client.post("/api/v1/objects", params=params, json=obj, headers=admin)
        assert r.status_code == 201, r.text
        made[dist] = obj["id"]

    def listed(headers: dict[str, str], **params: object) -> set[str]:
        r = client.get("/api/v1/objects", params={"type": "indicator", **params}, headers=headers)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert listed(admin, distribution="organization") == {made["organization"]}
    assert listed(admin, distribution=["node", "sharing_group"]) == {
        made["node"],
        made["sharing_group"],
    }
    assert listed(admin, sharing_group=group) == {made["sharing_group"]}
    b = {"Authorization": f"Bearer {key_b}"}
    assert listed(b, distribution="organization") == set()
    assert listed(b, sharing_group=group) == {made["sharing_group"]}
    assert_problem(
        client.get("/api/v1/objects", params={"distribution": "everyone"}, headers=admin),
        400,
        "invalid_input",
    )
