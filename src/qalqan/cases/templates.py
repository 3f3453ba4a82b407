"""Case templates: the kinds of case the center works most often, each with a default severity,
labels and the tasks every such case needs. Templates are data; adding one touches this file."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TEMPLATES", "CaseTemplate", "template_named"]


@dataclass(frozen=True, slots=True)
class CaseTemplate:
    """What a case opened from the template starts with."""

    name: str
    title: str
    description: str
    severity: int  # 1 low, 2 medium, 3 high, 4 critical
    labels: tuple[str, ...]
    tasks: tuple[str, ...]


TEMPLATES: dict[str, CaseTemplate] = {
    t.name: t
    for t in (
        CaseTemplate(
            name="ransomware",
            title="Ransomware",
            description="Encryption of systems and extortion, often with data theft.",
            severity=4,
            labels=("ransomware",),
            tasks=(
                "Identify the ransomware family and the ransom note",
                "Scope affected organizations and systems",
                "Collect and share indicators (hashes, C2, leak site)",
                "Check for data exfiltration and leak-site publication",
                "Coordinate containment and recovery advice",
                "Preserve evidence for law enforcement",
            ),
        ),
        CaseTemplate(
            name="phishing-campaign",
            title="Phishing campaign",
            description="Fraudulent messages luring users to credential or malware pages.",
            severity=3,
            labels=("phishing",),
            tasks=(
                "Collect sample messages with headers",
                "Extract URLs, domains and sender addresses",
                "Request takedown of phishing pages",
                "Request blocking at mail and DNS providers",
                "Notify targeted organizations",
            ),
        ),
        CaseTemplate(
            name="ddos",
            title="DDoS attack",
            description="Denial of service against online services.",
            severity=3,
            labels=("ddos",),
            tasks=(
                "Record the attack window, vectors and peak volume",
                "Collect attacking addresses and reflectors",
                "Notify networks hosting attacking infrastructure",
                "Coordinate mitigation with upstream providers",
            ),
        ),
        CaseTemplate(
            name="data-leak",
            title="Data leak",
            description="Data of an organization published or offered for sale.",
            severity=3,
            labels=("data-leak",),
            tasks=(
                "Verify the leaked data and its source",
                "Identify the affected organization and notify it",
                "Request removal from hosting sites",
                "Assess personal data involved and its retention",
            ),
        ),
        CaseTemplate(
            name="online-fraud",
            title="Online fraud / darknet market",
            description="Fraud schemes or a darknet market serving cybercrime.",
            severity=2,
            labels=("fraud", "darknet"),
            tasks=(
                "Map infrastructure: sites, hosting, domains",
                "Collect wallets and payment accounts used",
                "Request preservation of data at providers",
                "Share findings with participating law-enforcement contacts",
            ),
        ),
    )
}


def template_named(name: str) -> CaseTemplate:
    """The template called ``name``; ValueError naming the known ones."""
    try:
        return TEMPLATES[name.strip().lower()]
    except KeyError:
        known = ", ".join(TEMPLATES)
        raise ValueError(f"unknown case template {name!r}; use one of {known}") from None
