"""Requests for assistance (RFAs) between member orgs.

One org (the *requester*) asks another (the *recipient*) for information, preservation of
data, a takedown, blocking or attribution support, under a stated legal basis and by a
deadline. A request moves draft → sent → acknowledged → in-progress → answered, or ends
declined or withdrawn (:data:`qalqan.policy.rfas.TRANSITIONS`); each step is timestamped in
the request's timeline and recorded in the audit log, and the other side is notified. The
recipient may attach evidence of the request's case to its answer, which the requester may
then download. Only the two orgs see a request (:mod:`qalqan.policy.rfas`). The use cases are in
:mod:`qalqan.assistance.service`.
"""

from qalqan.assistance.service import (
    KINDS,
    PRIORITIES,
    RfaPage,
    RfaSpec,
    attach_evidence,
    create_rfa,
    describe,
    list_rfas,
    load_rfa,
    notify_overdue,
    transition,
    update_draft,
)

__all__ = [
    "KINDS",
    "PRIORITIES",
    "RfaPage",
    "RfaSpec",
    "attach_evidence",
    "create_rfa",
    "describe",
    "list_rfas",
    "load_rfa",
    "notify_overdue",
    "transition",
    "update_draft",
]
