"""After a run is done (pure): what is left to tidy on its target.

- its checkpoint, when the job reported it uploaded to the Hub (``hf_artifact_url`` with the repo,
  path and files in the sidecar) but did not delete it itself (``checkpoint_deleted``), and the
  project's ``huggingface.cleanup_checkpoints`` is on: the apply stage deletes it only after the
  Hub lists the files;
- its offline wandb runs, when ``wandb.sync_offline`` is on and the job ran offline.

A ``Tidied`` condition on the entry records that it was done (or could not be, and why), so it
happens once; a temporary failure (target or Hub away) leaves no condition and is tried again.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.actions import Tidy
from reconciler.model.config import Config
from reconciler.model.ids import code_dir
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.context import Context

TIDIED = "Tidied"


def tidy_actions(entries: Iterable[StatusEntry], ctx: Context) -> list[Tidy]:
    config = ctx.desired.config
    out = []
    done = Status.DONE
    for entry in entries:
        if entry.status is not done:
            continue
        attempt = entry.current
        if attempt is None or entry.condition(TIDIED) is not None:
            continue
        if attempt.target not in config.target_names:
            continue
        tobs = ctx.observed.target(attempt.target)
        if tobs is None or not tobs.reachable:
            continue
        side = dict(entry.sidecar)
        artifact = _artifact(entry, side, config)
        wandb_dirs = _wandb(entry, side, config)
        if artifact is None and not wandb_dirs:
            continue
        root = tobs.root or config.target(attempt.target).root
        target = config.target(attempt.target)
        base = target.checkpoint_dir or f"{root.rstrip('/')}/checkpoints"
        out.append(
            Tidy(
                exp_id=entry.id,
                target=attempt.target,
                attempt=attempt.n,
                run_dir=attempt.run_dir,
                code_dir=code_dir(root, attempt.git_commit or ctx.desired.revision or ""),
                checkpoint_dir=f"{base.rstrip('/')}/{entry.id}" if artifact else None,
                artifact=artifact,
                wandb_dirs=wandb_dirs,
            )
        )
    return out


def _artifact(
    entry: StatusEntry, side: dict[str, object], config: Config
) -> tuple[str, str, str, tuple[str, ...]] | None:
    if not config.hub.cleanup_checkpoints or not entry.hf_artifact_url or side.get("checkpoint_deleted"):
        return None
    repo, path = side.get("hf_artifact_repo"), side.get("hf_artifact_path")
    if not isinstance(repo, str) or not isinstance(path, str):
        return None
    files = side.get("hf_artifact_files")
    listed = tuple(str(f) for f in files) if isinstance(files, list | tuple) else ()
    return (repo, config.hub.repo_type, path, listed)


def _wandb(entry: StatusEntry, side: dict[str, object], config: Config) -> tuple[str, ...]:
    if not config.wandb.sync_offline or side.get("wandb_mode") != "offline" or not entry.wandb_run_id:
        return ()
    return (entry.wandb_run_id,)
