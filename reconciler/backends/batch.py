"""``BatchRunner``: the ``Runner`` of batch clusters (SLURM, PBS Pro, a platform's own CLI).

A cluster is reached through its login host (an SSH transport) or locally. Its runs use the
run-dir protocol of every target (``wrapper``): the job script the scheduler adapter builds
``exec``s ``wrapper.sh`` in the foreground on a compute node, and the wrapper writes
``launch.lock``, ``pid``, ``heartbeat``, ``stdout.log`` and ``exit_code`` on the shared filesystem,
where the probe reads them from the login host. What differs from a process target:

- **probe**: the scheduler's status query for every recorded job runs in the same remote command
  as the run-dir probe (one command per target per pass); each run gets its ``job_id`` (from the
  run dir) and ``job_state`` (``JobState`` value; ``unknown`` when its id was not asked this pass,
  ``None`` when the scheduler no longer knows it). ``alive`` means "the scheduler runs it".
- **launch**: exactly once. The run dir is claimed with its token as for processes; then one
  command looks for what an earlier launch left (a recorded ``job_id``, a submit's answer in
  ``submit.out``, a job carrying the attempt's name: a crash between submit and record) and
  adopts it; only when there is none is ``job.sh`` written and submitted, its answer kept in
  ``submit.out`` at once and the parsed id recorded as ``job_id``.
- **kill**: cancel the job, then check it has left the running states.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from collections.abc import Collection, Mapping
from pathlib import Path

from reconciler.backends import wrapper
from reconciler.backends.base import Transport
from reconciler.backends.scheduler import JobInfo, JobRequest, JobState, Scheduler, job_name, walltime_seconds
from reconciler.backends.scripts import receive_stdin
from reconciler.backends.shell import ShellRunner
from reconciler.crashpoints import crash_point
from reconciler.errors import SchedulerOutputError, TemporaryError
from reconciler.model.actions import Kill, Launch, Started
from reconciler.model.config import BatchOptions, Target
from reconciler.model.observed import RunObservation, TargetObservation
from reconciler.model.seedrun import SEED, SeedRun

SUBMIT_FAILED_EXIT = 95
"""The submit script exits with this when the submit command failed (the scheduler's adapter
says what that means: ``Scheduler.submit_error``)."""
SUBMIT_RC_MARK = "@@submit-rc@@"
"""Before the submit script's last stderr line when the submit command failed: its exit status."""
LIVE = (JobState.QUEUED, JobState.HELD, JobState.RUNNING)


class BatchRunner(ShellRunner):
    """A target whose runs are batch jobs (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        transport: Transport,
        project_dir: Path | None,
        project: str,
        scheduler: Scheduler,
        *,
        command_timeout: float = 120.0,
        cancel_wait: float = 10.0,
    ) -> None:
        super().__init__(target, transport, project_dir, project, command_timeout=command_timeout)
        self.scheduler = scheduler
        self.options = target.batch or BatchOptions()
        self.cancel_wait = cancel_wait

    async def probe(
        self,
        want: Collection[tuple[str, int]] = (),
        jobs: Mapping[tuple[str, int], str] | None = None,
        seed: Mapping[tuple[str, int], SeedRun] | None = None,
    ) -> TargetObservation:
        asked = sorted(set((jobs or {}).values()))
        prefix = self.scheduler.status_command(asked, []) if asked else None
        observation, printed = await self._probe(want, prefix, seed)
        infos = self.scheduler.parse_status(printed) if prefix is not None else {}
        return with_jobs(observation, infos, frozenset(asked), jobs or {}, self.scheduler)

    async def launch(self, action: Launch) -> Started:
        """Two commands: claim the run dir and write the wrapper; then adopt or submit the job."""
        await self.prepare_run_dir(dataclasses.replace(action, gpus=()))  # the scheduler picks the devices
        request = self.job_request(action)
        done = await self._run(self.adopt_script(request))
        if done.returncode != 0:
            raise self._fail("looking for the job", done)
        head, _, rest = done.stdout.partition("@@find@@\n")
        head, submitted, answer = head.partition("@@submit@@\n")
        facts = wrapper.parse_key_values(head)
        adopted = True
        if facts.get("job_id"):
            job_id = facts["job_id"]
        elif submitted:
            job_id = self.scheduler.parse_submit(answer)
            await self.record_job_id(action.run_dir, job_id)
        elif found := self.scheduler.parse_find(rest):
            job_id = found[0]
            await self.record_job_id(action.run_dir, job_id)
        elif facts.get("launched") == "1":
            raise TemporaryError(f"{self.name}: {action.exp_id} attempt {action.attempt} ran, but its job id is lost")
        else:
            adopted = False
            job_id = await self._submit(request)
        return Started(host=facts.get("host", ""), job_id=job_id, queued=facts.get("launched") != "1", adopted=adopted)

    async def _submit(self, request: JobRequest) -> str:
        job_script = self.scheduler.job_script(request)
        data = job_script.encode()
        done = await self._run(self.submit_script(request, len(data)), stdin=data)
        if done.returncode == SUBMIT_FAILED_EXIT:
            status, detail = submit_failure(done.stderr or done.stdout)
            raise self.scheduler.submit_error(status, detail)
        if done.returncode != 0:
            raise self._fail("submitting the job", done)
        _, _, answer = done.stdout.partition("@@submit@@\n")
        job_id = self.scheduler.parse_submit(answer)
        crash_point("after_submit")
        await self.record_job_id(request.run_dir, job_id)
        return job_id

    def job_request(self, action: Launch) -> JobRequest:
        return JobRequest(
            name=job_name(self.project, action.exp_id, action.attempt, action.run_dir),
            run_dir=action.run_dir,
            wrapper=f"{action.run_dir}/wrapper.sh",
            output=f"{action.run_dir}/scheduler.log",
            walltime_seconds=walltime_seconds(action.expected_duration_hours, self.options),
            gpus=action.gpu_count,
            options=self.options,
        )

    def adopt_script(self, request: JobRequest) -> str:
        """Find what an earlier launch of this attempt left, in order: a ``job_id`` recorded in
        the run dir; the answer of a submit (``submit.out``, written the moment the submit command
        returned; the controller parses it); else the scheduler's jobs carrying the attempt's name
        (printed after ``@@find@@`` for the adapter's ``parse_find``). Also prints ``host=`` and,
        when the wrapper already ran, ``launched=1``."""
        q = shlex.quote
        find = self.scheduler.find_command(request.name)
        return f"""cd {q(request.run_dir)} || exit 1
echo "host=$(uname -n)"
if [ -d launch.lock ]; then echo launched=1; fi
if [ -s job_id ]; then echo "job_id=$(cat job_id)"; exit 0; fi
if [ -s submit.out ]; then echo @@submit@@; cat submit.out; exit 0; fi
echo @@find@@
{find}
"""

    def submit_script(self, request: JobRequest, size: int) -> str:
        """Write ``job.sh`` (stdin, ``size`` bytes: a cut stream submits nothing) and submit it,
        unless a submit already answered; the answer goes to ``submit.out`` at once and follows
        a ``@@submit@@`` line."""
        q = shlex.quote
        submit = self.scheduler.submit_command(f"{request.run_dir}/job.sh", request)
        return f"""cd {q(request.run_dir)} || exit 1
if [ -s submit.out ]; then cat >/dev/null; echo @@submit@@; cat submit.out; exit 0; fi
{receive_stdin("job.sh", size)}
out=$( {submit} 2>&1 ); rc=$?
if [ $rc -ne 0 ]; then printf '%s\\n{SUBMIT_RC_MARK}%s\\n' "$out" "$rc" >&2; exit {SUBMIT_FAILED_EXIT}; fi
printf '%s\\n' "$out" > .submit.$$ && mv -f .submit.$$ submit.out
echo @@submit@@
printf '%s\\n' "$out"
"""

    async def record_job_id(self, run_dir: str, job_id: str) -> None:
        q = shlex.quote
        done = await self._run(f"cd {q(run_dir)} && printf '%s\\n' {q(job_id)} > .job_id.$$ && mv -f .job_id.$$ job_id")
        if done.returncode != 0:
            raise self._fail("recording the job id", done)

    async def kill(self, action: Kill) -> bool:
        """Cancel the job; True once the scheduler shows it out of the live states (or forgot it)."""
        if not action.job_id:
            return await super().kill(action)
        done = await self._run(self.scheduler.cancel_command(action.job_id))
        if done.returncode != 0:
            raise self._fail(f"cancelling job {action.job_id}", done)
        deadline = asyncio.get_running_loop().time() + self.cancel_wait
        while True:
            done = await self._run(self.scheduler.status_command([action.job_id], []))
            info = self.scheduler.parse_status(done.stdout).get(action.job_id)
            if info is None or info.state not in LIVE:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.5)


SUBMIT_ANSWER = "submit:"
"""The probe's ``job_id`` of a run dir holding a submit's answer but no recorded id (a pass died
between the two): the scheduler's raw answer follows, parsed here by the adapter."""


def _parsed(scheduler: Scheduler, answer: str) -> str | None:
    try:
        return scheduler.parse_submit(answer)
    except SchedulerOutputError:
        return None


def with_jobs(
    observation: TargetObservation,
    infos: Mapping[str, JobInfo],
    asked: frozenset[str],
    recorded: Mapping[tuple[str, int], str],
    scheduler: Scheduler,
) -> TargetObservation:
    """The probe's runs with their job ids and scheduler states.

    ``job_state``: the ``JobState`` value; ``unknown`` when the run's id was not asked this pass
    (its id is only in the run dir: the next pass asks); ``None`` when asked and not reported
    (the scheduler has forgotten it). ``alive`` is the scheduler's word: the job runs.
    """
    runs: dict[tuple[str, int], RunObservation] = {}
    for key, run in observation.runs.items():
        job_id = run.job_id or recorded.get(key)
        if job_id is not None and job_id.startswith(SUBMIT_ANSWER):
            job_id = recorded.get(key) or _parsed(scheduler, job_id[len(SUBMIT_ANSWER) :])
        if job_id is None:
            runs[key] = dataclasses.replace(run, alive=False, job_id=None)
            continue
        info = infos.get(job_id)
        if info is not None:
            state: str | None = info.state.value
        elif job_id in asked:
            state = None
        else:
            state = JobState.UNKNOWN.value
        exit_code = run.exit_code
        if run.token == SEED and exit_code is None and info is not None:
            exit_code = seed_job_exit(info)
        runs[key] = dataclasses.replace(
            run,
            job_id=job_id,
            job_state=state,
            exit_code=exit_code,
            alive=state == JobState.RUNNING.value and exit_code is None,
        )
    return dataclasses.replace(observation, runs=runs, gpus=None)


def seed_job_exit(info: JobInfo) -> int | None:
    """The exit code of a job the seed submitted (no wrapper of ours records one): the
    scheduler's exit status once it completed or failed (0 for a completion it reports without
    one: a platform CLI's ``FINISHED``). Walltime, node failure, preemption and cancellation are
    left to the job rules, as for ours."""
    if info.state is JobState.COMPLETED:
        return info.exit_status if info.exit_status is not None else 0
    if info.state is JobState.FAILED:
        return info.exit_status
    return None


def submit_failure(stderr: str) -> tuple[int, str]:
    """(exit status, output) of a failed submit command, as the submit script reported them."""
    text, mark, rc = stderr.rstrip().rpartition(SUBMIT_RC_MARK)
    if not mark:
        return 1, stderr.strip()
    status = rc.strip()
    return (int(status) if status.isdigit() else 1), text.strip()
