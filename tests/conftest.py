"""Shared fixtures (heavy ones, a real sshd or SLURM, live in ``tests/fixtures/``) and the test tiers.

Tiers: a test that uses a real OpenSSH server is marked ``ssh``, one that uses the single-node SLURM
``slurm``, one that drives Chromium ``browser`` (marked here from the fixtures it asks for, so no
test can forget its mark); fault-injection scenarios are ``chaos``, and end-to-end modules whose
tests take seconds each are ``slow`` (marked in their modules). ``pytest -q`` runs the fast tier
(every test without one of these marks: unit, golden, fuzz and the local end-to-end pass);
``pytest -q -m ""`` runs every tier (what ``.ci/run`` does); ``-m ssh`` and the like run one.
"""

from __future__ import annotations

import pytest

from tests.fakes.fixtures import fake_hub  # noqa: F401
from tests.fixtures.slurm import slurm_cluster  # noqa: F401
from tests.fixtures.sshd import rctest_dir, sshd_hosts, sshd_no_sftp  # noqa: F401

TIER_OF_FIXTURE = {
    "sshd_hosts": "ssh",
    "sshd_no_sftp": "ssh",
    "rctest_dir": "ssh",
    "slurm_cluster": "slurm",
    "browser": "browser",
}
"""A test that asks for one of these fixtures (directly or through another) is in its tier."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            tier = TIER_OF_FIXTURE.get(name)
            if tier is not None and item.get_closest_marker(tier) is None:
                item.add_marker(getattr(pytest.mark, tier))
