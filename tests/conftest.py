"""Shared fixtures. Heavy ones (a real sshd) live in ``tests/fixtures/`` and are imported here."""

from __future__ import annotations
