"""Shared fixtures. Heavy ones (a real sshd) live in ``tests/fixtures/`` and are imported here."""

from __future__ import annotations

from tests.fakes.fixtures import fake_hub  # noqa: F401
from tests.fixtures.slurm import slurm_cluster  # noqa: F401
from tests.fixtures.sshd import rctest_dir, sshd_hosts, sshd_no_sftp  # noqa: F401
