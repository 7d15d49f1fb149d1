"""Fixtures of the backend tests: ``backend`` runs a test over every transport (see ``helpers``)."""

from __future__ import annotations

from tests.backends.helpers import backend  # noqa: F401
