"""Build ``reconciler.model.config.Config`` from a schema-valid ``config/reconciler.yaml``.

Runs after the schema check, so every value has its documented type; absent keys take the model's
defaults, which are the schema's documented defaults. ``template_problems`` adds the one check the
schema cannot make: that a ``command`` target's regexes compile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.errors import Problem
from reconciler.load.schema_check import Checked
from reconciler.model.config import (
    BackoffPolicy,
    BatchOptions,
    CommandTemplates,
    Config,
    EnvActivation,
    EnvCheck,
    EnvRepair,
    GitSettings,
    GpuPolicy,
    HubSettings,
    Limits,
    Notifications,
    Policies,
    SshOptions,
    Target,
    TargetKind,
    TimeoutPolicy,
    UnreachablePolicy,
    WandbSettings,
)
from reconciler.model.spec import RemediationRule

_SSH_KEYS = (
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "strict_host_key_checking",
    "proxy_jump",
    "config_file",
)


def text_pairs(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """``{K: v}`` -> sorted ``(("K", "v"),)``; numbers become their text (``1`` -> ``"1"``)."""
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


def _pick(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d}


def _floats(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: float(d[k]) for k in keys if k in d}


def _hours(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _tuples(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: tuple(d[k]) for k in keys if k in d}


def _repair(value: object) -> EnvRepair | None:
    """``env.repair``: ``true`` (the default ladder), ``{commands, timeout_seconds}``, or off."""
    if value is True:
        return EnvRepair()
    if isinstance(value, Mapping):
        return EnvRepair(commands=tuple(value.get("commands") or ()), **_floats(value, "timeout_seconds"))
    return None


def build_target(name: str, d: Mapping[str, Any]) -> Target:
    kind = TargetKind(d["kind"])
    ssh = None
    if "host" in d:
        ssh = SshOptions(host=d["host"], **_pick(d, *_SSH_KEYS))
    env_d = d.get("env") or {}
    env = EnvActivation(
        conda=env_d.get("conda"),
        venv=env_d.get("venv"),
        setup=tuple(env_d.get("setup") or ()),
        variables=text_pairs(env_d.get("variables")),
        repair=_repair(env_d.get("repair")),
    )
    gpus_d = d.get("gpus") or {}
    gpus = GpuPolicy(
        **_tuples(gpus_d, "blacklist", "blacklist_models"),
        **_pick(gpus_d, "max_runs_per_gpu", "leases"),
        **_floats(gpus_d, "vram_factor"),
    )
    batch = None
    if "batch" in d:
        b = d["batch"]
        batch = BatchOptions(
            **_pick(b, "queue", "account", "qos", "storage", "cpus_per_gpu"),
            mem_gb=None if b.get("mem_gb") is None else float(b["mem_gb"]),
            **_tuples(b, "modules", "extra_directives"),
            **_floats(b, "walltime_factor", "default_walltime_hours"),
        )
    templates = build_templates(d["templates"]) if "templates" in d else None
    return Target(
        name=name,
        kind=kind,
        root=d["root"],
        ssh=ssh,
        env=env,
        gpus=gpus,
        batch=batch,
        templates=templates,
        **_pick(d, "max_runs", "data_dir", "checkpoint_dir", "python"),
        **_floats(d, "platform_factor"),
        env_check=EnvCheck(**_pick(d.get("env_check") or {}, "command")),
    )


def build_templates(d: Mapping[str, Any]) -> CommandTemplates:
    """A ``command`` target's templates; ``states`` becomes sorted ``(word, state)`` pairs."""
    return CommandTemplates(
        **_pick(d, "submit", "status", "cancel", "find", "job_id_regex", "state_regex"),
        states=text_pairs(d.get("states")),
    )


def template_problems(checked: Checked) -> list[Problem]:
    """Regexes of ``templates`` that do not compile, placed at their field (``file:line:col``).

    The schema cannot say "a valid Python regex"; run this on a schema-valid config."""
    problems: list[Problem] = []
    targets = checked.doc.get(("targets",))
    for name, target in (targets or {}).items() if isinstance(targets, dict) else ():
        templates = target.get("templates") if isinstance(target, dict) else None
        if not isinstance(templates, dict):
            continue
        for key in ("job_id_regex", "state_regex"):
            pattern = templates.get(key)
            if not isinstance(pattern, str):
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                path = ("targets", name, "templates", key)
                problems.append(checked.doc.problem(path, f"not a valid regular expression: {exc}"))
    return problems


def build_policies(d: Mapping[str, Any]) -> Policies:
    backoff = d.get("backoff") or {}
    unreachable = d.get("unreachable") or {}
    timeouts = d.get("timeouts") or {}
    return Policies(
        **_floats(
            d,
            "poll_interval",
            "connect_timeout",
            "command_timeout",
            "lost_grace_seconds",
            "env_ttl_hours",
            "env_check_timeout",
            "progress_commit_minutes",
        ),
        **_pick(d, "probe_concurrency", "max_retries", "prune", "pause", "restart_on_spec_change", "retry_target"),
        **_pick({k: _hours(v) for k, v in d.items() if k == "archive_after_hours"}, "archive_after_hours"),
        remediation=remediation_rules(d.get("remediation") or {}),
        env_check=EnvCheck(**_pick(d.get("env_check") or {}, "command")),
        limits=Limits(**_pick(d.get("limits") or {}, "result_bytes", "probe_bytes")),
        backoff=BackoffPolicy(**_floats(backoff, "base_seconds", "factor", "max_seconds")),
        unreachable=UnreachablePolicy(
            **_pick(unreachable, "consecutive", "total", "min_probes"), **_floats(unreachable, "ratio")
        ),
        timeouts=TimeoutPolicy(
            **_floats(timeouts, "escalate_factor", "hold_factor", "queue_factor", "phase_guard_hours"),
            **_pick(timeouts, "kill_on_hold"),
        ),
    )


def build_config(d: Mapping[str, Any]) -> Config:
    """The typed config; ``d`` must have passed the config schema."""
    notifications = d.get("notifications") or {}
    return Config(
        project=d["project"],
        targets=tuple(build_target(name, t) for name, t in d["targets"].items()),
        policies=build_policies(d.get("policies") or {}),
        git=GitSettings(**(d.get("git") or {})),
        notifications=Notifications(
            **_pick(notifications, "enabled", "telegram_token_env", "telegram_chat_env", "webhook_env", "telegram_api"),
            **_floats(notifications, "failure_threshold", "timeout_seconds"),
            **_tuples(notifications, "events"),
        ),
        wandb=WandbSettings(**(d.get("wandb") or {})),
        hub=HubSettings(**(d.get("huggingface") or {})),
    )


def remediation_rules(rules: Mapping[str, Any]) -> tuple[RemediationRule, ...]:
    """``failure class -> rule`` mappings (dispatch specs and the config's policies)."""
    return tuple(
        RemediationRule(
            failure_class=name,
            retry=None if rule.get("retry") is None else bool(rule["retry"]),
            set_args=text_pairs(rule.get("set_args")),
            halve_args=tuple(rule.get("halve_args") or ()),
            add_flags=tuple(rule.get("add_flags") or ()),
            drop_flags=tuple(rule.get("drop_flags") or ()),
            env=text_pairs(rule.get("env")),
            defaults=text_pairs(rule.get("defaults")),
        )
        for name, rule in sorted(rules.items())
    )
