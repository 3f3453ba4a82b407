"""Passwords are kept as argon2id hashes and checked against them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qalqan import accounts
from qalqan.domain.principal import Role
from qalqan.errors import InvalidInput
from qalqan.testing import TestNode


def test_a_password_is_stored_as_an_argon2id_hash(node: TestNode) -> None:
    secret = "correct horse battery staple"
    with node.instance.begin() as conn:
        user = accounts.add_user(conn, None, "soc@a.test", "CERT-A", Role.ANALYST, secret)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert secret not in user.password_hash
    assert accounts.verify_password(user, secret)
    assert not accounts.verify_password(user, secret.upper())
    assert not accounts.verify_password(user, "")


def test_users_without_a_password_or_disabled_cannot_log_in(node: TestNode) -> None:
    with node.instance.begin() as conn:
        keyless = accounts.add_user(conn, None, "nopass@a.test", "CERT-A", Role.READER)
        user = accounts.add_user(conn, None, "soc@a.test", "CERT-A", Role.ANALYST, "x" * 12)
    assert not accounts.verify_password(keyless, "")
    assert not accounts.verify_password(keyless, "anything at all")
    assert accounts.verify_password(user, "x" * 12)
    assert not accounts.verify_password(replace(user, disabled=True), "x" * 12)


def test_short_passwords_are_refused(node: TestNode) -> None:
    with node.instance.begin() as conn, pytest.raises(InvalidInput, match="12 characters"):
        accounts.add_user(conn, None, "soc@a.test", "CERT-A", Role.ANALYST, "short")
