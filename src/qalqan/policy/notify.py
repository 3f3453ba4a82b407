"""Who may route an org's notifications: org admins (and node admins, for their own org) manage
its webhooks and read its delivery log; every user chooses what reaches them by e-mail. An org's
webhooks and deliveries do not exist for anyone outside it."""

from __future__ import annotations

from qalqan.domain.principal import Principal, Role

__all__ = ["may_choose_email", "may_manage_webhooks"]

_ADMINS = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN})
_PEOPLE = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST, Role.READER})


def may_manage_webhooks(principal: Principal) -> bool:
    """May the principal add, change, remove and test its org's webhooks and read the org's
    delivery log?"""
    return principal.role in _ADMINS


def may_choose_email(principal: Principal) -> bool:
    """May the principal choose what it gets by e-mail? People with an account; not machine
    (sync) accounts, nor the node's console acting without a user."""
    return principal.user_id is not None and principal.role in _PEOPLE
