"""Is a run's checkpoint safely on the Hugging Face Hub? The controller's gate before it cleans up
the checkpoint on the target.

``artifact_from_sidecar`` reads what the job recorded (``reconciler.runtime.hub`` writes it);
``confirm_artifact`` asks the Hub whether every expected file is there (``HfApi.get_paths_info``
for the expected paths; with none given, the recursive listing ``list_repo_tree``, which the client
itself also retries for up to about 25 s), backing off on 429/5xx/connection errors. Foreign exceptions are converted
here: still failing after the retries → ``TemporaryError`` (try again next pass); 401/403, a missing
repo, bad arguments → ``PermanentError``. A repo without the folder is an answer, not an error:
``Confirmation.confirmed`` is False.

It blocks (HTTP); an async caller runs it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import PermanentError, TemporaryError
from reconciler.runtime.hub import HubError, endpoint_of, listed_sizes, paths_sizes, tree_url, with_backoff

_NOT_FOUND_IN_REPO = ("EntryNotFoundError", "RemoteEntryNotFoundError")


@dataclass(frozen=True)
class ArtifactRef:
    """Where the job says its checkpoint went."""

    repo_id: str
    path_in_repo: str
    files: tuple[str, ...] | None
    url: str


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    url: str
    listed: tuple[str, ...]
    missing: tuple[str, ...]


def artifact_from_sidecar(sidecar: Mapping[str, Any]) -> ArtifactRef | None:
    """The artifact a sidecar names (``hf_artifact_url`` set, with ``hf_artifact_repo`` and
    ``hf_artifact_path``); None when there is none. ``files`` is None when the job listed more
    files than the sidecar holds (``hf_artifact_file_count`` above the list's length)."""
    url, repo, path = (sidecar.get(k) for k in ("hf_artifact_url", "hf_artifact_repo", "hf_artifact_path"))
    if not (isinstance(url, str) and url and isinstance(repo, str) and repo and isinstance(path, str)):
        return None
    names = sidecar.get("hf_artifact_files")
    count = sidecar.get("hf_artifact_file_count")
    files: tuple[str, ...] | None = None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        complete = not isinstance(count, int) or count <= len(names)
        files = tuple(names) if complete else None
    return ArtifactRef(repo, path, files, url)


def expected_paths(path_in_repo: str, expected: Sequence[str]) -> list[str]:
    """Repo paths of the expected files (names relative to ``path_in_repo``, or already full)."""
    base = path_in_repo.strip("/")
    out = []
    for name in expected:
        clean = name.strip("/")
        out.append(clean if not base or clean.startswith(base + "/") else f"{base}/{clean}")
    return sorted(set(out))


def confirm_artifact(
    repo_id: str,
    path_in_repo: str,
    expected: list[str] | None,
    endpoint: str | None = None,
    token: str | None = None,
    *,
    repo_type: str = "model",
    revision: str | None = None,
    attempts: int = 4,
    base_delay: float = 1.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Confirmation:
    """Whether ``repo_id`` lists every ``expected`` file under ``path_in_repo`` (with ``expected``
    None: at least one file). See the module docstring for the errors."""
    base = endpoint_of(endpoint)
    url = tree_url(base, repo_id, path_in_repo.strip("/"), repo_type, revision or "main")
    try:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=base, token=token or None)
    except ImportError as exc:
        raise PermanentError(f"huggingface_hub is not installed: {exc}", "HubClientMissing") from exc
    wanted = expected_paths(path_in_repo, expected) if expected is not None else None
    try:
        listed = with_backoff(
            lambda: _listing(api, repo_id, path_in_repo, wanted, repo_type, revision),
            f"list {repo_id}/{path_in_repo}",
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
        )
    except HubError as exc:
        failure = exc.failure
        if failure.temporary:
            after = f"; it asks to retry after {failure.retry_after:g} s" if failure.retry_after is not None else ""
            raise TemporaryError(f"Hub at {base}: {exc}{after}") from exc
        reason = {401: "HubUnauthorized", 403: "HubForbidden", 404: "HubRepoNotFound"}.get(
            failure.status or 0, "HubRejected"
        )
        raise PermanentError(f"Hub at {base}: {exc}", reason) from exc
    names = tuple(sorted(listed))
    if expected is None:
        return Confirmation(bool(names), url, names, ())
    missing = tuple(p for p in wanted or () if p not in listed)
    return Confirmation(not missing, url, names, missing)


def _listing(
    api: Any, repo_id: str, path_in_repo: str, wanted: list[str] | None, repo_type: str, revision: str | None
) -> dict[str, int]:
    try:
        if wanted is not None:
            return paths_sizes(api, repo_id, wanted, repo_type, revision) if wanted else {}
        return listed_sizes(api, repo_id, path_in_repo.strip("/"), repo_type, revision)
    except Exception as exc:
        if type(exc).__name__ in _NOT_FOUND_IN_REPO:
            return {}  # the repo is there, the folder is not
        raise
