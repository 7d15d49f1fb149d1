"""A lab's whole history (issue 20): N experiments (default 100,000) in 20 dispatch files, as a
year of sweeps leaves them, with the naive poller beside our passes in the same run.

The world: 50 phases of N/50 experiments each (sweeps of 100 seeds); the first 70 % of the phases
ended months ago (95 % done with a result, 5 % failed), the next 10 % are running and the last
20 % wait for a slot (each target's ``max_runs`` is its number of live runs). Targets: H ``local``
targets (the probe runs as on a host, through the local shell; no SSH: the controller's own costs
are the subject here, ``benchmarks.run`` and ``benchmarks.network`` measure the fleet and the
network). The live runs' run dirs are written as the wrapper leaves them, each naming one of a
pool of real ``sleep`` processes (``--sleepers``, default 200; a probe reads each run dir and
checks its pid and start time, so sharing a process changes nothing it does) and the ended
entries are written into ``dispatch/state.json`` as passes left them (the state before
archiving). The first pass adopts the live runs and archives the ended phases (what upgrading a
project to this version does); then, measured:

- ``validate``, ``status --json``, ``status`` and ``reconcile --once`` on an idle world, each a
  fresh process (wall seconds and peak RSS of the process);
- idle passes in one process (what watch mode does: ``reconcile_once`` again and again);
- a changing pass (one live run ends): its wall time and the bytes of the new git objects it wrote;
- the naive poller: one ``sh`` process per live run per poll (the seed's supervisor runs
  ``ssh host <check>`` per run; locally the ``ssh`` is left out, so this is kinder to it), sampled
  and scaled up linearly (``~``).

    .venv/bin/python -m benchmarks.scale                 # N = 100,000, H = 4 (about 10 minutes)
    .venv/bin/python -m benchmarks.scale --n 10000 --runs 3 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from benchmarks.fleet import CSV_HEADER, start_time_of
from reconciler.gitstore import ProjectRepo
from reconciler.gitstore.packing import wait_for_repack
from reconciler.model.ids import launch_token, run_dir
from reconciler.model.status import Attempt, StateFile, Status

PROJECT = "scale"
PHASES = 50
SEEDS = 100
FILES = 20
GOALS = {"idle --once s": 3.0, "idle --once MiB": 500.0, "changing pass new objects KiB": 1024.0}
GOALS_CLI = {"validate": 5.0, "status --json": 2.0}
ENV = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@localhost",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@localhost",
}
LONG_AGO = "2026-03-01T10:00:00+00:00"
TIME = "/usr/bin/time"


@dataclass
class World:
    root: Path
    n: int
    hosts: int
    sleepers: int
    project: Path = field(init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    live: dict[str, tuple[str, str]] = field(default_factory=dict)
    """exp_id -> (target, run dir) of the live runs"""

    def phase_kind(self, p: int) -> str:
        return "ended" if p < PHASES * 0.7 else "live" if p < PHASES * 0.8 else "waiting"

    def build(self) -> World:
        self.project = self.root / "project"
        for d in ("config", "dispatch"):
            (self.project / d).mkdir(parents=True)
        names = [f"t{i}" for i in range(self.hosts)]
        per_phase = max(SEEDS, self.n // PHASES)
        sweeps: list[tuple[int, dict[str, Any]]] = []
        for p in range(PHASES):
            for s in range(per_phase // SEEDS):
                k = p * 1000 + s
                spec = {
                    "id": f"p{p:02d}_sweep{s:02d}",
                    "command": f"sh job.sh {{exp_id}} {{seed}} {{result_file}} --lr 0.{k}",
                    "seeds": list(range(SEEDS)),
                    "method": f"m{s % 7}",
                    "dataset": f"d{s % 5}",
                    "phase": f"phase{p:02d}",
                    "targets": [names[(p * 1000 + s) % len(names)]],
                }
                sweeps.append((p, spec))
        for f in range(FILES):
            chosen = [spec for i, (_p, spec) in enumerate(sweeps) if i % FILES == f]
            doc = {"version": 1, "defaults": {"expected_duration_hours": 100, "max_retries": 0}, "experiments": chosen}
            (self.project / "dispatch" / f"sweeps{f:02d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (self.project / "job.sh").write_text("exec sleep 100000\n")
        (self.project / ".gitignore").write_text(".reconciler/\n")
        roots = {t: f".reconciler/runs-{t}" for t in names}
        live_specs = [spec for p, spec in sweeps if self.phase_kind(p) == "live"]
        room = dict.fromkeys(names, 0)
        for spec in live_specs:
            room[spec["targets"][0]] += SEEDS
        config = {
            "version": 1,
            "project": PROJECT,
            "targets": {t: {"kind": "local", "root": roots[t], "max_runs": max(1, room[t])} for t in names},
            "policies": {"poll_interval": 3600, "command_timeout": 600, "max_retries": 0},
        }
        (self.project / "config" / "reconciler.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._sleepers()
        for spec in live_specs:
            target = spec["targets"][0]
            for seed in spec["seeds"]:
                exp_id = f"{spec['id']}_s{seed}"
                rdir = self.project / run_dir(roots[target], exp_id, 1)
                proc = self.procs[len(self.live) % len(self.procs)]
                _live_run_dir(rdir, exp_id, proc.pid, start_time_of(proc.pid))
                self.live[exp_id] = (target, str(rdir))
        self._ended_state(roots)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "a year of sweeps"]):
            subprocess.run(["git", *args], cwd=self.project, env={**os.environ, **ENV}, check=True)
        return self

    def _sleepers(self) -> None:
        for _ in range(self.sleepers):
            proc = subprocess.Popen(
                ["sleep", "100000"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.procs.append(proc)

    def _ended_state(self, roots: dict[str, str]) -> None:
        """``dispatch/state.json`` with the ended phases' entries, as passes left them."""
        from reconciler.load import load_desired
        from reconciler.plan.entries import new_entry

        desired = load_desired(self.project)
        entries = []
        for i, spec in enumerate(desired.experiments):
            if self.phase_kind(int(spec.phase[5:])) != "ended":
                continue
            base = new_entry(spec, desired.config.policies)
            target = spec.targets[0]
            failed = i % 20 == 0
            attempt = Attempt(
                1, target, base.command, run_dir(roots[target], spec.id, 1), "t",
                exit_code=1 if failed else 0, started=LONG_AGO, finished=LONG_AGO,
            )  # fmt: skip
            entry = replace(base, attempt=1, attempts=(attempt,), target=target, started=LONG_AGO, finished=LONG_AGO)
            if failed:
                entry = replace(entry, status=Status.FAILED, failure_class="unknown", notes="attempt 1 failed")
            else:
                entry = replace(entry, status=Status.DONE, results=(("accuracy", 0.9),))
            entries.append(entry)
        state = StateFile(project=PROJECT, entries=tuple(sorted(entries, key=lambda e: e.id)))
        (self.project / "dispatch" / "state.json").write_text(state.dumps())

    def end_one(self) -> str:
        """One live run ends (its exit code and result written as the wrapper writes them)."""
        exp_id, (_target, rdir) = next(iter(self.live.items()))
        del self.live[exp_id]
        path = Path(rdir)
        result = path / "experiments" / "results" / f"{exp_id}.csv"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(
            f"{CSV_HEADER}\n{exp_id},m,d,main,accuracy,0,0.9,{os.uname().nodename},,2026-11-26T00:00:00Z\n"
        )
        (path / "exit_code").write_text("0\n")
        return exp_id

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _live_run_dir(path: Path, exp_id: str, pid: int, start: str) -> None:
    (path / "launch.lock").mkdir(parents=True)
    (path / "token").write_text(launch_token(PROJECT, exp_id, 1) + "\n")
    (path / "pid").write_text(f"{pid}\n")
    (path / "start_time").write_text(start + "\n")
    (path / "host").write_text(os.uname().nodename + "\n")
    (path / "heartbeat").write_text("0\n")
    (path / "stdout.log").write_text(f"epoch 1/10 {exp_id}\n")
    (path / "result_path").write_text(f"{path / 'experiments' / 'results' / (exp_id + '.csv')}\n")


def run_cli(project: Path, args: list[str]) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit status, stderr tail) of ``reconcile ARGS -C project`` (the peak
    from ``/usr/bin/time``: a child forked from this big process would inherit its high-water mark)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", rss.name, sys.executable, "-m", "reconciler", *args, "-C", str(project)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "120"},
            check=False,
        )
        wall = time.perf_counter() - start
        peak = int((rss.read().strip().splitlines() or ["0"])[-1]) / 1024
    return wall, peak, done.returncode, done.stderr[-800:]


def new_objects_kib(project: Path, old: str, new: str) -> float:
    """The bytes (as stored: zlib-compressed loose objects) of the objects ``new`` added over ``old``."""
    listed = subprocess.run(
        ["git", "rev-list", "--objects", f"{old}..{new}"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    shas = "\n".join(line.split()[0] for line in listed.splitlines() if line.strip()) + "\n"
    sizes = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectsize:disk)"],
        cwd=project, input=shas, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(int(x) for x in sizes.split()) / 1024


def thin_pack_kib(project: Path, old: str, new: str) -> float:
    """The bytes of the pack ``git push`` would send for ``old..new`` (deltas against ``old``):
    what the repository keeps of the pass once git packs its objects."""
    pack = subprocess.run(
        ["git", "pack-objects", "--revs", "--thin", "--stdout", "-q"],
        cwd=project, input=f"{new}\n^{old}\n".encode(), capture_output=True, check=True,
    ).stdout  # fmt: skip
    return len(pack) / 1024


def count_objects(project: Path) -> dict[str, int]:
    """``git count-objects -v``: loose ``count`` and ``size``, ``packs``, ``size-pack`` (KiB)."""
    listed = subprocess.run(["git", "count-objects", "-v"], cwd=project, capture_output=True, text=True, check=True)
    return {k: int(v) for k, v in (line.split(": ") for line in listed.stdout.splitlines())}


def objects_kib(project: Path) -> int:
    """The repository's objects as stored, loose and packed (KiB)."""
    counts = count_objects(project)
    return counts["size"] + counts["size-pack"]


def changing_passes(world: World, k: int) -> dict[str, Any]:
    """``k`` passes in a row that each record an ended run (and launch into the slot the one before
    freed), with the background repack (``git.pack_loose_mib``, 32 MiB) on: what the repository
    grows by per changing pass, once the repacks that the passes started have finished."""
    project = world.project
    # Everything before packed first, so that the repacks these passes start cannot flatter the
    # figure by compacting older loose objects; timed, as the background repack's own cost.
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        subprocess.run([TIME, "-f", "%M", "-o", rss.name, "git", "repack", "-a", "-d", "-q"], cwd=project, check=True)
        full = {"s": round(time.perf_counter() - started, 1), "MiB": round(int(rss.read().split()[-1]) / 1024)}
    before = objects_kib(project)
    walls: list[float] = []
    peaks: list[float] = []
    repacks: list[dict[str, float]] = []
    for _ in range(k):
        world.end_one()
        old = head(project)
        wall, rss, code, err = run_cli(project, ["--once"])
        if code not in (0, 1) or head(project) == old:
            raise SystemExit(f"a changing pass made no commit ({code}): {err}")
        walls.append(wall)
        peaks.append(rss)
        if (seen := watch_repack()) is not None:
            repacks.append(seen)
    with ProjectRepo(project) as repo:
        if not wait_for_repack(repo, timeout=600):
            raise SystemExit("the background repack did not finish in 10 minutes")
    counts = count_objects(project)
    return {
        "full repack before": full,
        "background repacks": repacks,
        "passes": k,
        "s": round(statistics.median(walls), 2),
        "MiB": round(max(peaks)),
        "growth KiB per pass": round((objects_kib(project) - before) / k, 1),
        "loose KiB": counts["size"],
        "packs": counts["packs"],
    }


def watch_repack() -> dict[str, float] | None:
    """When a pass just started the background repack: how long it ran from the pass's end and
    its peak memory (its ``git pack-objects`` child's ``VmHWM``, polled), waited for before the
    next pass; ``None`` when none runs."""
    started = time.perf_counter()
    peak_kib = 0
    while True:
        pattern = "git (repack -d -q --geometric|pack-objects)"
        pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        time.sleep(0.05)
    if peak_kib == 0:
        return None
    return {"s": round(time.perf_counter() - started, 1), "MiB": round(peak_kib / 1024)}


def head(project: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()


def naive_poll(world: World, sample: int) -> tuple[float, bool]:
    """Seconds of one naive poll over every live run (one ``sh`` per run; sampled: scaled)."""
    runs = list(world.live.values())
    chosen = runs[:sample] if sample and len(runs) > sample else runs
    start = time.perf_counter()
    for _target, rdir in chosen:
        check = f"cd {rdir} && kill -0 $(cat pid) 2>/dev/null && tail -n 20 stdout.log >/dev/null || test -s exit_code"
        subprocess.run(["sh", "-c", check], check=False)
    spent = time.perf_counter() - start
    return spent * len(runs) / max(1, len(chosen)), len(chosen) < len(runs)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"n": args.n, "hosts": args.hosts, "sleepers": args.sleepers}
    with tempfile.TemporaryDirectory(prefix="reconciler-scale-") as scratch:
        started = time.perf_counter()
        world = World(args.keep or Path(scratch), args.n, args.hosts, args.sleepers).build()
        try:
            project = world.project
            out["built s"] = round(time.perf_counter() - started, 1)
            out["state.json MB before"] = round((project / "dispatch/state.json").stat().st_size / 1e6, 1)
            log(f"built {args.n:,} experiments in {out['built s']} s")
            before = head(project)
            wall, rss, code, err = run_cli(project, ["--once"])
            if code not in (0, 1):
                raise SystemExit(f"the first pass failed ({code}): {err}")
            out["first pass"] = {
                "s": round(wall, 2),
                "MiB": round(rss),
                "new objects KiB": round(new_objects_kib(project, before, head(project))),
            }
            out["state.json MB"] = round((project / "dispatch/state.json").stat().st_size / 1e6, 1)
            archive = project / "dispatch" / "archive"
            out["archive MB"] = (
                round(sum(p.stat().st_size for p in archive.glob("*.json")) / 1e6, 1) if archive.exists() else 0
            )
            log(f"first pass (adopts, archives) {wall:.1f} s, {rss:.0f} MiB")
            settle = head(project)
            for _ in range(5):
                wall, rss, code, err = run_cli(project, ["--once"])
                if head(project) == settle:
                    break
                settle = head(project)
            cli: dict[str, dict[str, float]] = {}
            for name, cmd in (
                ("validate", ["validate"]),
                ("status --json", ["status", "--json"]),
                ("status", ["status"]),
                ("idle --once", ["--once"]),
            ):
                runs = [run_cli(project, cmd) for _ in range(args.runs)]
                if name == "idle --once" and head(project) != settle:
                    raise SystemExit("an idle pass committed")
                cli[name] = {
                    "s": round(statistics.median(r[0] for r in runs), 2),
                    "MiB": round(max(r[1] for r in runs)),
                }
                log(f"{name}: {cli[name]['s']} s, {cli[name]['MiB']} MiB")
            out["cli"] = cli
            out["watch idle s"] = watch_idle(project, args.runs)
            log(f"idle passes in one process: {out['watch idle s']}")
            ended = world.end_one()
            old = head(project)
            wall, rss, code, err = run_cli(project, ["--once"])
            new = head(project)
            if new == old:
                raise SystemExit(f"the changing pass ({ended} ended) made no commit: {err}")
            out["changing pass"] = {
                "s": round(wall, 2),
                "MiB": round(rss),
                "new objects KiB": round(new_objects_kib(project, old, new), 1),
                "packed KiB": round(thin_pack_kib(project, old, new), 1),
            }
            log(f"changing pass: {out['changing pass']}")
            wall, rss, code, err = run_cli(project, ["--once"])  # the slot it freed: a launch
            out["next pass"] = {"s": round(wall, 2), "MiB": round(rss), "commit": head(project) != new}
            runs = [run_cli(project, ["--once"]) for _ in range(args.runs)]
            out["idle after a change"] = {
                "s": round(statistics.median(r[0] for r in runs), 2),
                "MiB": round(max(r[1] for r in runs)),
            }
            log(f"after it: {out['next pass']}, then idle {out['idle after a change']}")
            out["changes"] = changing_passes(world, args.changes)
            log(f"{args.changes} changing passes: {out['changes']}")
            naive, sampled = naive_poll(world, args.naive_max)
            out["naive poll s"] = round(naive, 1)
            out["naive sampled"] = sampled
            out["ratio"] = round(naive / cli["idle --once"]["s"], 1)
        finally:
            if args.keep is None:
                world.close()
            else:
                log(f"kept {world.project} (its {len(world.procs)} sleep processes still run)")
    return out


def watch_idle(project: Path, runs: int) -> list[float]:
    """Idle passes in one process, as watch mode runs them (the first one warms up)."""
    code = (
        "import sys, time, json\nfrom pathlib import Path\nfrom reconciler.engine import reconcile_once\n"
        f"p = Path({str(project)!r}); out = []\n"
        f"for _ in range({runs + 1}):\n"
        "    t = time.perf_counter(); reconcile_once(p, log=lambda m: None); out.append(time.perf_counter() - t)\n"
        "print(json.dumps(out[1:]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [round(x, 2) for x in json.loads(done.stdout.strip().splitlines()[-1])]


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def report(out: dict[str, Any]) -> str:
    cli = out["cli"]
    lines = [
        f"N = {out['n']:,} experiments, H = {out['hosts']} local targets; `dispatch/state.json` "
        f"{out['state.json MB before']} MB before the first pass, {out['state.json MB']} MB after "
        f"(archive files {out['archive MB']} MB)",
        "",
        "| what | s | peak MiB | goal |",
        "| --- | --- | --- | --- |",
        f"| first pass (adopts the live runs, archives the ended phases) | {out['first pass']['s']} "
        f"| {out['first pass']['MiB']} | |",
    ]
    goals = {"validate": "5 s", "status --json": "2 s", "idle --once": "3 s, 500 MB"}
    for name, fig in cli.items():
        lines.append(f"| `reconcile {name}` | {fig['s']} | {fig['MiB']} | {goals.get(name, '')} |")
    watch = out["watch idle s"]
    lines.append(
        f"| idle pass in one process (watch mode), median of {len(watch)} | {statistics.median(watch):.2f} | | 3 s |"
    )
    ch = out["changing pass"]
    lines.append(
        f"| changing pass (one run ended): {ch['new objects KiB']} KiB of new loose objects (written whole, "
        f"packed by a later repack), {ch['packed KiB']} KiB as a delta | {ch['s']} | {ch['MiB']} | |"
    )
    lines.append(
        f"| the pass after it (the freed slot: a launch) | {out['next pass']['s']} | {out['next pass']['MiB']} | |"
    )
    many = out["changes"]
    lines.append(
        f"| {many['passes']} changing passes in a row (background repack past 32 MiB loose): the repository grew "
        f"{many['growth KiB per pass']} KiB per pass (loose {many['loose KiB']} KiB and {many['packs']} packs "
        f"at the end) | {many['s']} | {many['MiB']} | 1 MB |"
    )
    full = many["full repack before"]
    lines.append(
        f"| (`git repack -a -d` of everything before them, so that they start packed) | {full['s']} | {full['MiB']} | |"
    )
    for seen in many["background repacks"]:
        lines.append(f"| a background repack one of them started (from the pass end) | {seen['s']} | {seen['MiB']} | |")
    after = out["idle after a change"]
    lines.append(f"| idle `--once` after the change | {after['s']} | {after['MiB']} | 3 s, 500 MB |")
    tilde = "~" if out["naive sampled"] else ""
    lines.append(
        f"| naive poller, one `sh` per live run | {tilde}{out['naive poll s']} | | ({tilde}{out['ratio']}x ours) |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--sleepers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-max", type=int, default=300)
    parser.add_argument("--changes", type=int, default=20, help="changing passes in a row (repository growth)")
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--keep", type=Path, help="build the world in this (empty) dir and leave it there")
    args = parser.parse_args(argv)
    out = measure(args)
    print(json.dumps(out, indent=2) if args.as_json else report(out))
    missed = out["cli"]["validate"]["s"] > 5 or out["cli"]["status --json"]["s"] > 2
    missed = missed or out["cli"]["idle --once"]["s"] > 3 or out["changes"]["growth KiB per pass"] > 1024
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
