"""Fixtures of the engine tests: the fake ``nvidia-smi`` (``tests.fixtures.fake_gpu``)."""

from __future__ import annotations

from tests.fixtures.fake_gpu import fake_gpus  # noqa: F401
