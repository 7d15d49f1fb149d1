"""Run the example project for real: copy it into a fresh git repository, then let `reconcile`
drive it until every experiment is done, and show the status and the audit trail.

    python examples/run_example.py [DEST]        # DEST defaults to ./example-run

The copy is its own repository (the reconciler commits its status there, not into this one).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sh(*args: str, cwd: Path) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, cwd=cwd, check=True)


def main() -> int:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "example-run").resolve()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(HERE / "project", dest, ignore=shutil.ignore_patterns(".reconciler", "__pycache__"))
    git = ["git", "-c", "user.name=example", "-c", "user.email=example@localhost"]
    sh("git", "init", "-q", "-b", "main", cwd=dest)
    sh(*git, "add", "-A", cwd=dest)
    sh(*git, "commit", "-q", "-m", "Desired state: the example pilot", cwd=dest)
    reconcile = [sys.executable, "-m", "reconciler"]
    sh(*reconcile, "validate", str(dest), cwd=dest)
    done = subprocess.run([*reconcile, "--until-done", "-C", str(dest)], cwd=dest).returncode
    sh(*reconcile, "status", "-C", str(dest), cwd=dest)
    sh("git", "log", "--oneline", "--", "dispatch/state.json", cwd=dest)
    print(f"\nThe project is in {dest}; try `reconcile log logreg_blobs_s0 -C {dest}`.")
    return done


if __name__ == "__main__":
    sys.exit(main())
