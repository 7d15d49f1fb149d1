#!/usr/bin/env python3
"""Test shim in front of the example's train.py, copied into each failure-test project as
``experiments/scripts/shim.py``: it takes the flags train.py lacks, then ``exec``s train.py.

- ``--fp16`` and ``--accumulate-grad-batches N`` (what the default remediation rules drop or add)
  are accepted and echoed, never passed on;
- ``--oom-hang MAX``: while ``--batch-size`` > MAX, print PyTorch's CUDA OOM line to stderr and
  keep running (a data-loader or DDP peer keeps the process alive), writing ``shim.pid``;
- ``--import-late``: an ImportError after the ``--dry-run`` check (so the env check passes);
- ``--fill-checkpoint-dir``: write into ``--checkpoint-dir`` until the disk is full.
A ``--dry-run`` ignores all of them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

args = sys.argv[1:]


def take_flag(name: str) -> bool:
    global args
    found = name in args
    args = [a for a in args if a != name]
    return found


def take_value(name: str) -> str | None:
    global args
    if name in args:
        i = args.index(name)
        value = args[i + 1]
        args = args[:i] + args[i + 2 :]
        return value
    return None


def value(name: str, default: str = "") -> str:
    return args[args.index(name) + 1] if name in args else default


fp16 = take_flag("--fp16")
accumulate = take_value("--accumulate-grad-batches")
oom_hang = take_value("--oom-hang")
import_late = take_flag("--import-late")
fill = take_flag("--fill-checkpoint-dir")
dry = "--dry-run" in args
batch = int(value("--batch-size", "16"))
print(f"shim: batch_size={batch} accumulate={accumulate} fp16={fp16} dry_run={dry}", flush=True)

if not dry:
    run_dir = os.environ.get("RECONCILER_RUN_DIR")
    if run_dir:
        Path(run_dir, "shim.pid").write_text(f"{os.getpid()}\n")
    if oom_hang is not None and batch > int(oom_hang):
        print(
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
            "(GPU 0; 23.69 GiB total capacity; 20.31 GiB already allocated)",
            file=sys.stderr,
            flush=True,
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:  # still alive: only the reconciler's kill ends it early
            time.sleep(0.1)
        sys.exit(1)
    if import_late:
        import missing_pkg_for_failure_tests  # type: ignore[import-not-found]  # noqa: F401
    if fill:
        big = Path(value("--checkpoint-dir"), "filler.bin")
        big.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(big, "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        except OSError:
            big.unlink()  # free the space so the traceback reaches the log
            raise

train = str(Path(__file__).resolve().with_name("train.py"))
os.execv(sys.executable, [sys.executable, train, *args])
