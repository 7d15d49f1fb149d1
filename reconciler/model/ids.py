"""Identifiers derived from content, so a replayed pass computes the same ones."""

from __future__ import annotations

import hashlib


def launch_token(project: str, exp_id: str, attempt: int) -> str:
    """The token written into an attempt's run dir before its process starts.

    Deterministic, so a pass that crashed after creating the run dir and a later pass agree on it;
    a run dir with another token belongs to another project or an older layout and is never adopted.
    """
    blob = f"{project}\0{exp_id}\0{attempt}".encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def run_dir(root: str, exp_id: str, attempt: int) -> str:
    return f"{root.rstrip('/')}/runs/{exp_id}/{attempt}"


def code_dir(root: str, commit: str) -> str:
    return f"{root.rstrip('/')}/code/{commit}"


def dry_run_dir(root: str, exp_id: str) -> str:
    """Scratch dir for an environment check's dry run: a script that ignores ``--dry-run`` writes
    there, never into a real run dir or checkpoint dir (a later run would resume from it)."""
    return f"{root.rstrip('/')}/.reconciler/dry-run/{exp_id}"


DEFAULT_RESULT_FILE = "experiments/results/{exp_id}.csv"
"""Where a run writes its result, relative to the code dir, unless its spec says (``result_file``)."""


def default_result_file(exp_id: str) -> str:
    return DEFAULT_RESULT_FILE.format(exp_id=exp_id)
