"""Shared fixtures. Heavy ones (a real sshd) live in ``tests/fixtures/`` and are imported here."""

from __future__ import annotations

from tests.fixtures.sshd import rctest_dir, sshd_hosts  # noqa: F401
