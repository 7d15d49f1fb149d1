"""Checkpoints to the Hugging Face Hub: upload a folder as one commit, confirm it from the file
listing, record the URL in the sidecar, and only then delete the local copy.

``upload_checkpoint`` never raises for a Hub problem: it returns an ``Upload`` that says what
happened. Hub down, rate-limited past the retries, files missing from the listing: the local
checkpoint is kept, the sidecar's ``hf_upload_error`` says why, ``ok`` is False. The sidecar's
``hf_artifact_url`` is written after the listing confirms every file and before anything is
deleted, so the controller's gate (``reconciler.tracking.hub.confirm_artifact``) and this one agree.

Rate limits: one commit per folder (``upload_folder``), and every call backs off on 429, 5xx and
connection errors (``Retry-After`` honoured, capped). The confirmation asks for exactly the
uploaded paths (``get_paths_info``) and compares their sizes. ``huggingface_hub`` is imported only here,
on first use; ``endpoint`` is passed explicitly, so nothing depends on when ``HF_ENDPOINT`` was read.
``classify`` and ``with_backoff`` are shared with the controller side.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reconciler.runtime.env import Run, current
from reconciler.runtime.sidecar import update_sidecar

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_LISTED_FILES = 200
"""At most this many file names go into the sidecar (the probe ignores sidecars over 256 KiB)."""
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_TEMPORARY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class HubFailure:
    """A Hub call's failure, classified: ``temporary`` ones are worth retrying later."""

    temporary: bool
    status: int | None
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Upload:
    """What ``upload_checkpoint`` did."""

    ok: bool
    url: str | None
    files: tuple[str, ...]
    deleted: bool
    error: str | None = None
    temporary: bool = False


def endpoint_of(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def tree_url(endpoint: str, repo_id: str, path_in_repo: str, repo_type: str = "model", revision: str = "main") -> str:
    """``<endpoint>/<repo>/tree/<rev>/<path>`` (datasets and spaces carry their prefix)."""
    return f"{endpoint.rstrip('/')}/{_URL_PREFIX.get(repo_type, '')}{repo_id}/tree/{revision}/{path_in_repo}"


def classify(exc: BaseException) -> HubFailure:
    """Sort a ``huggingface_hub`` / ``httpx`` / ``requests`` exception: 408, 425, 429 and 5xx,
    connection and timeout errors are temporary; other HTTP statuses (401, 403, 404, ...) and
    invalid arguments are permanent."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(status, int):
        retry_after = _retry_after(getattr(response, "headers", None))
        temporary = status in _TEMPORARY_STATUS or status >= 500
        return HubFailure(temporary, status, f"HTTP {status}: {first}", retry_after)
    module = type(exc).__module__.split(".")[0]
    connection = module in ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3") or isinstance(
        exc, (ConnectionError, TimeoutError)
    )
    if connection:
        return HubFailure(True, None, f"{type(exc).__name__}: {first}")
    return HubFailure(False, None, f"{type(exc).__name__}: {first}")


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class HubError(Exception):
    """A Hub call failed for good (permanent) or ran out of retries (temporary)."""

    def __init__(self, failure: HubFailure, what: str) -> None:
        self.failure = failure
        super().__init__(f"{what}: {failure.message}")


def with_backoff(
    call: Callable[[], T],
    what: str,
    *,
    attempts: int = 5,
    base_delay: float = 2.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry temporary failures with exponential backoff (``Retry-After`` wins,
    capped at ``max_delay``). Raises ``HubError`` with the last failure."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            failure = classify(exc)
            if not failure.temporary or attempt == attempts:
                raise HubError(failure, what) from exc
            delay = failure.retry_after if failure.retry_after is not None else base_delay * 2 ** (attempt - 1)
            sleep(min(max_delay, delay))
    raise AssertionError("unreachable")  # pragma: no cover


def local_files(folder: Path) -> dict[str, int]:
    """Relative POSIX path -> size of every regular file under ``folder``."""
    out: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(folder).as_posix()] = path.stat().st_size
    return out


PATHS_PER_REQUEST = 100


def _file_sizes(entries: Any) -> dict[str, int]:
    return {e.path: int(e.size) for e in entries if getattr(e, "size", None) is not None and hasattr(e, "blob_id")}


def listed_sizes(api: Any, repo_id: str, path_in_repo: str, repo_type: str, revision: str | None) -> dict[str, int]:
    """Path -> size of every file the Hub lists under ``path_in_repo`` (``list_repo_tree``,
    recursive; the client retries this GET itself, for up to about 25 s)."""
    entries = api.list_repo_tree(
        repo_id, path_in_repo=path_in_repo or None, recursive=True, repo_type=repo_type, revision=revision
    )
    return _file_sizes(entries)


def paths_sizes(api: Any, repo_id: str, paths: list[str], repo_type: str, revision: str | None) -> dict[str, int]:
    """Path -> size of those of ``paths`` the Hub has (``get_paths_info``, one POST per 100 paths,
    no retries inside the client: ``with_backoff`` decides)."""
    out: dict[str, int] = {}
    for start in range(0, len(paths), PATHS_PER_REQUEST):
        chunk = paths[start : start + PATHS_PER_REQUEST]
        out.update(_file_sizes(api.get_paths_info(repo_id, chunk, repo_type=repo_type, revision=revision)))
    return out


def upload_checkpoint(
    local_dir: str | Path,
    repo_id: str,
    *,
    path_in_repo: str | None = None,
    repo_type: str = "model",
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = True,
    delete_local: bool = True,
    run: Run | None = None,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float = 60.0,
) -> Upload:
    """Upload ``local_dir`` to ``checkpoints/<EXP_ID>`` of ``repo_id`` as one commit; see the module docstring.

    ``attempts`` and ``base_delay`` (tries per Hub call, first backoff in seconds) default to
    ``RECONCILER_HUB_ATTEMPTS`` (5) and ``RECONCILER_HUB_BACKOFF`` (2.0) from the environment.
    """
    run = run or current()
    attempts = attempts if attempts is not None else int(os.environ.get("RECONCILER_HUB_ATTEMPTS") or 5)
    base_delay = base_delay if base_delay is not None else float(os.environ.get("RECONCILER_HUB_BACKOFF") or 2.0)
    folder = Path(local_dir)
    if not folder.is_dir():
        raise ValueError(f"upload_checkpoint: {folder} is not a directory")
    target = (path_in_repo or f"checkpoints/{run.exp_id}").strip("/")
    base = endpoint_of(endpoint)
    files = local_files(folder)
    if not files:
        return _failed(run, f"nothing to upload: {folder} holds no files", temporary=False)
    expected = {f"{target}/{rel}": size for rel, size in files.items()}
    backoff: dict[str, Any] = {"attempts": attempts, "base_delay": base_delay, "max_delay": max_delay}
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        return _failed(run, f"huggingface_hub is not installed in the job's environment: {exc}", temporary=False)
    try:
        api = HfApi(endpoint=base, token=token or os.environ.get("HF_TOKEN") or None)
        with_backoff(
            lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True),
            "create_repo",
            **backoff,
        )
        with_backoff(
            lambda: api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                path_in_repo=target,
                repo_type=repo_type,
                commit_message=f"checkpoint {run.exp_id} (attempt {run.attempt})",
            ),
            "upload_folder",
            **backoff,
        )
        listed = with_backoff(
            lambda: paths_sizes(api, repo_id, sorted(expected), repo_type, None), "list files", **backoff
        )
    except HubError as exc:
        return _failed(run, str(exc), temporary=exc.failure.temporary)
    wrong = sorted(p for p, size in expected.items() if listed.get(p) != size)
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        return _failed(run, f"uploaded but not listed with the right size: {shown}", temporary=True)
    url = tree_url(base, repo_id, target, repo_type)
    names = sorted(files)
    update_sidecar(
        {
            "hf_artifact_url": url,
            "hf_artifact_repo": repo_id,
            "hf_artifact_path": target,
            "hf_artifact_files": names[:MAX_LISTED_FILES],
            "hf_artifact_file_count": len(names),
            "hf_upload_error": None,
        },
        run,
    )
    deleted = False
    if delete_local:
        shutil.rmtree(folder)
        deleted = True
        update_sidecar({"checkpoint_deleted": True}, run)
    return Upload(True, url, tuple(sorted(expected)), deleted)


def _failed(run: Run, message: str, *, temporary: bool) -> Upload:
    print(f"reconciler.runtime: checkpoint upload failed, local copy kept: {message}", file=sys.stderr)
    update_sidecar({"hf_upload_error": message, "checkpoint_deleted": False}, run)
    return Upload(False, None, (), False, message, temporary)
