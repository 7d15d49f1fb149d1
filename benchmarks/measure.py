"""One measured pass: ``reconciler.engine.reconcile_once`` in this process, timed and counted.

The engine is not modified: for the duration of a pass the names it calls (``open_runners``,
``observe``, ``make_plan``, ``execute``, ``commit_status``) are wrapped as ``reconciler.engine``
sees them. Per pass:

- wall time; observe / plan (``make_plan`` alone) / apply / commit time;
- remote commands (the ``Runners`` counter: every ``transport.run``) and bytes moved (commands'
  stdin, stdout, stderr and SFTP file bytes, as the transports count them);
- CPU time of this process (user + system) and of its reaped children (git), and of the target
  side (the SSH server helpers and the commands they ran: ``SshFleet.cpu_seconds``);
- peak resident memory of this process during the pass: the kernel's high-water mark ``VmHWM``,
  reset before the pass through ``/proc/self/clear_refs`` (Linux); elsewhere ``ru_maxrss``, the
  peak of the whole process so far (marked as such);
- whether the pass committed (HEAD moved) and the statuses after it.
"""

from __future__ import annotations

import contextlib
import re
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.fleet import git
from reconciler import engine


class Instruments:
    """Wraps the names the engine module calls, to time and count one pass."""

    NAMES = ("open_runners", "make_plan", "commit_status", "observe", "execute")

    def __init__(self) -> None:
        self.runners: list[Any] = []
        self.timings: dict[str, float] = {}

    def _add(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def _timed(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(key, t0)

        return wrapper

    def _timed_async(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._add(key, t0)

        return wrapper

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        originals = {name: getattr(engine, name) for name in self.NAMES}

        def open_runners(*args: Any, **kwargs: Any) -> Any:
            runners = originals["open_runners"](*args, **kwargs)
            self.runners.append(runners)
            return runners

        wrapped = {
            "open_runners": open_runners,
            "make_plan": self._timed("plan", originals["make_plan"]),
            "commit_status": self._timed("commit", originals["commit_status"]),
            "observe": self._timed_async("observe", originals["observe"]),
            "execute": self._timed_async("apply", originals["execute"]),
        }
        for name, fn in wrapped.items():
            setattr(engine, name, fn)
        try:
            yield
        finally:
            for name, fn in originals.items():
                setattr(engine, name, fn)


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_mib() -> float:
    """``VmHWM`` (peak RSS since the last reset) in MiB, else ``ru_maxrss`` (Linux: KiB)."""
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
        if found:
            return int(found.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def one_pass(project: Path, label: str, target_cpu: Callable[[], float]) -> dict[str, Any]:
    """Run one pass over ``project`` and return its figures (see the module docstring)."""
    tools = Instruments()
    head = git(project, "rev-parse", "HEAD")
    scoped_peak = reset_peak()
    cpu0, child0, target0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), target_cpu()
    with tools.installed():
        t0 = time.perf_counter()
        result = engine.reconcile_once(project, pull=False, push_changes=False, log=lambda _m: None)
        wall = time.perf_counter() - t0
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0
    child = _cpu(resource.RUSAGE_CHILDREN) - child0
    target = target_cpu() - target0
    peak = peak_mib()
    runners = tools.runners[0]
    transports = [r.transport for r in runners.by_name.values()]
    counts: dict[str, int] = {}
    for e in result.state.entries:
        counts[e.status.value] = counts.get(e.status.value, 0) + 1
    return {
        "pass": label,
        "wall_s": wall,
        "commands": runners.commands,
        "bytes": sum(t.bytes_transferred for t in transports),
        "cpu_s": cpu,
        "cpu_children_s": child,
        "target_cpu_s": target,
        "peak_mib": peak,
        "peak_scope": "pass" if scoped_peak else "process",
        "plan_ms": tools.timings.get("plan", 0.0) * 1e3,
        "observe_ms": tools.timings.get("observe", 0.0) * 1e3,
        "apply_ms": tools.timings.get("apply", 0.0) * 1e3,
        "commit_ms": tools.timings.get("commit", 0.0) * 1e3,
        "io_actions": len(result.plan.io_actions),
        "committed": git(project, "rev-parse", "HEAD") != head,
        "statuses": counts,
        "unreachable": dict(result.unreachable),
        "failed_actions": [r.message for r in result.results if not r.ok][:3],
    }
