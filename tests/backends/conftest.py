"""Fixtures of the backend tests: ``backend`` runs a test over every transport (see ``helpers``)."""

from __future__ import annotations

from tests.backends.helpers import backend  # noqa: F401
from tests.fixtures.fake_gpu import fake_gpus  # noqa: F401
