"""What a launch of an experiment runs: its rendered command and its environment (shared by the
placement of new launches and the adoption of attempts a crashed pass started)."""

from __future__ import annotations

from reconciler.model.config import Config, Target
from reconciler.model.ids import run_dir
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import StatusEntry
from reconciler.plan.active import checkpoint_path


def render_command(entry: StatusEntry, spec: ExperimentSpec, target: Target, root: str, n: int) -> str:
    """The entry's command (the spec's, remediated by earlier failures) with placeholders filled
    for attempt ``n`` on ``target``: results go into the attempt's own run dir."""
    result = entry.result_file or spec.result_path
    checkpoint = checkpoint_path(target, root, entry.id)
    return spec.render(entry.command, checkpoint, result_file=f"{run_dir(root, entry.id, n)}/{result}")


def launch_env(
    spec: ExperimentSpec, gpus: tuple[int, ...], gpu_host: bool, config: Config
) -> tuple[tuple[str, str], ...]:
    """The spec's variables, then the project's tracking settings the job-side runtime reads
    (the spec's own values win); a run given no GPU on a GPU host sees none (not GPU 0 by default)."""
    env = spec.env
    given = {k for k, _ in env}
    extra = [(k, v) for k, v in tracking_env(config) if k not in given]
    if gpu_host and not gpus and "CUDA_VISIBLE_DEVICES" not in given:
        extra.append(("CUDA_VISIBLE_DEVICES", ""))
    return (*env, *extra)


def tracking_env(config: Config) -> tuple[tuple[str, str], ...]:
    """``WANDB_PROJECT``/``WANDB_ENTITY``/``WANDB_MODE`` when the config names a wandb project, and
    ``RECONCILER_HF_REPO`` when it names a Hub repo (no secrets: the
    API keys come from the target's own environment)."""
    out: list[tuple[str, str]] = []
    if config.wandb.project:
        out.append(("WANDB_PROJECT", config.wandb.project))
        if config.wandb.entity:
            out.append(("WANDB_ENTITY", config.wandb.entity))
        out.append(("WANDB_MODE", config.wandb.mode))
    if config.hub.repo:
        out.append(("RECONCILER_HF_REPO", config.hub.repo))
    return tuple(out)
