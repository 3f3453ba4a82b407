"""Notification delivery: what each org and user is told about, and how it reaches them.

Notifications are rows of the ``notifications`` table (kinds in :mod:`.kinds`), written where
things happen: a sighting, a request for assistance, case work (:mod:`.events`). Each user sees
their org's and their own in the app; :mod:`.dispatch` also carries them to the org's webhooks
(:mod:`.webhooks`, HMAC-signed, retried with backoff, logged) and by e-mail to the users who
chose so (:mod:`.preferences`, sent over SMTP by :mod:`.channels`).
"""

from __future__ import annotations

from qalqan.notify.kinds import KINDS, Kind

__all__ = ["KINDS", "Kind"]
