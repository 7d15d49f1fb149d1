"""Checkpoints to a loopback fake Hub with the real ``huggingface_hub`` client; the controller's confirmation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import runtime
from reconciler.errors import PermanentError, TemporaryError
from reconciler.runtime.bundle import write_bundle
from reconciler.tracking.hub import artifact_from_sidecar, confirm_artifact
from tests.fakes.fakehub import FakeHub

REPO_ID = "me/demo-artifacts"
FAST: dict[str, Any] = {"attempts": 3, "base_delay": 0.01, "max_delay": 0.05}


def checkpoint(tmp_path: Path) -> Path:
    ck = tmp_path / "ckpt"
    (ck / "sub").mkdir(parents=True)
    (ck / "best.json").write_text('{"epoch": 3}\n')
    (ck / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 8)
    return ck


def upload(hub: FakeHub, ck: Path, **kw: Any) -> runtime.Upload:
    return runtime.upload_checkpoint(ck, REPO_ID, endpoint=hub.endpoint, **{**FAST, **kw})


def test_the_files_arrive_in_one_commit_and_the_local_copy_goes_after(
    fake_hub: FakeHub, run_env: Path, tmp_path: Path
) -> None:
    ck = checkpoint(tmp_path)
    result = upload(fake_hub, ck)
    assert result.ok, result.error
    files = fake_hub.files(REPO_ID)
    assert files == {
        "checkpoints/exp1_s0/best.json": b'{"epoch": 3}\n',
        "checkpoints/exp1_s0/sub/weights.bin": bytes(range(256)) * 8,
    }
    assert len(fake_hub.commits(REPO_ID)) == 1
    assert not ck.exists() and result.deleted
    assert result.url == f"{fake_hub.endpoint}/{REPO_ID}/tree/main/checkpoints/exp1_s0"
    side = json.loads((run_env / "status.json").read_text())
    assert side["hf_artifact_url"] == result.url
    assert side["hf_artifact_files"] == ["best.json", "sub/weights.bin"]
    assert side["hf_upload_error"] is None and side["checkpoint_deleted"] is True
    # the listing was asked after the commit: deletion waited for it
    paths = fake_hub.paths()
    commit = next(i for i, p in enumerate(paths) if "/commit/" in p)
    assert any("/paths-info/" in p for p in paths[commit + 1 :])


def test_nothing_is_deleted_until_the_listing_confirms(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    ck = checkpoint(tmp_path)
    fake_hub.hidden.add("checkpoints/exp1_s0/sub")
    result = upload(fake_hub, ck)
    assert len(fake_hub.commits(REPO_ID)) == 1  # the upload itself went through
    assert not result.ok and result.temporary and not result.deleted
    assert ck.exists() and (ck / "sub" / "weights.bin").exists()
    side = runtime.read_sidecar()
    assert "hf_artifact_url" not in side
    assert side["hf_upload_error"] == "uploaded but not listed with the right size: checkpoints/exp1_s0/sub/weights.bin"
    assert side["checkpoint_deleted"] is False


@pytest.mark.parametrize("how", ["refused", "503"])
def test_hub_down_keeps_the_checkpoint_and_says_why(fake_hub: FakeHub, run_env: Path, tmp_path: Path, how: str) -> None:
    ck = checkpoint(tmp_path)
    before = sorted(p.relative_to(ck) for p in ck.rglob("*"))
    fake_hub.go_down(how)
    result = upload(fake_hub, ck)
    assert not result.ok and result.temporary and result.url is None
    assert sorted(p.relative_to(ck) for p in ck.rglob("*")) == before
    side = runtime.read_sidecar()
    assert "create_repo" in side["hf_upload_error"]
    assert ("Connect" in side["hf_upload_error"]) if how == "refused" else ("503" in side["hf_upload_error"])
    assert side.get("hf_artifact_url") is None


def test_rate_limited_twice_then_it_succeeds(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    ck = checkpoint(tmp_path)
    fake_hub.fail_next(2, 429)
    result = upload(fake_hub, ck)
    assert result.ok, result.error
    statuses = [r.status for r in fake_hub.requests]
    assert statuses[:3] == [429, 429, 200]
    assert len(fake_hub.commits(REPO_ID)) == 1


def test_a_commit_rate_limited_is_retried_as_one_commit(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    ck = checkpoint(tmp_path)
    fake_hub.fail_next(1, 429, match="/commit/")
    assert upload(fake_hub, ck).ok
    assert len(fake_hub.commits(REPO_ID)) == 1


def test_a_bad_token_is_permanent_and_not_retried(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    fake_hub.token = "right"
    ck = checkpoint(tmp_path)
    result = upload(fake_hub, ck, token="wrong")
    assert not result.ok and not result.temporary
    assert "401" in (result.error or "")
    assert fake_hub.paths("POST") == ["/api/repos/create"]  # no retry (the GET is the client's own exist_ok check)
    assert ck.exists()
    assert upload(fake_hub, ck, token="right").ok


def test_an_existing_repo_is_reused(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    fake_hub.add_file(REPO_ID, "README.md", b"hi")
    assert upload(fake_hub, checkpoint(tmp_path)).ok
    names = {"README.md", "checkpoints/exp1_s0/best.json", "checkpoints/exp1_s0/sub/weights.bin"}
    assert set(fake_hub.files(REPO_ID)) == names


def test_an_empty_or_missing_folder(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = upload(fake_hub, tmp_path / "empty")
    assert not result.ok and "nothing to upload" in (result.error or "")
    assert (tmp_path / "empty").exists() and fake_hub.requests == []
    with pytest.raises(ValueError):
        upload(fake_hub, tmp_path / "missing")


# -- the controller's side ---------------------------------------------------------------------


def test_confirm_what_the_job_recorded(fake_hub: FakeHub, run_env: Path, tmp_path: Path) -> None:
    assert upload(fake_hub, checkpoint(tmp_path)).ok
    ref = artifact_from_sidecar(runtime.read_sidecar())
    assert ref is not None and ref.files == ("best.json", "sub/weights.bin")
    got = confirm_artifact(ref.repo_id, ref.path_in_repo, list(ref.files), fake_hub.endpoint, None)
    assert got.confirmed and got.missing == ()
    assert got.url == ref.url
    assert confirm_artifact(REPO_ID, "checkpoints/exp1_s0", None, fake_hub.endpoint, None).confirmed


def test_confirm_says_no_for_missing_files_and_folders(fake_hub: FakeHub) -> None:
    fake_hub.add_file(REPO_ID, "checkpoints/e/best.json", b"{}")
    got = confirm_artifact(REPO_ID, "checkpoints/e", ["best.json", "last.json"], fake_hub.endpoint, None)
    assert not got.confirmed and got.missing == ("checkpoints/e/last.json",)
    nothing = confirm_artifact(REPO_ID, "checkpoints/other", None, fake_hub.endpoint, None)
    assert not nothing.confirmed and nothing.listed == ()


def test_confirm_backs_off_on_429(fake_hub: FakeHub) -> None:
    fake_hub.add_file(REPO_ID, "checkpoints/e/best.json", b"{}")
    fake_hub.fail_next(2, 429)
    slept: list[float] = []
    got = confirm_artifact(REPO_ID, "checkpoints/e", ["best.json"], fake_hub.endpoint, None, sleep=slept.append)
    assert got.confirmed
    assert slept == [0.0, 0.0]  # the fake's Retry-After: 0


def test_confirm_converts_errors(fake_hub: FakeHub) -> None:
    with pytest.raises(PermanentError) as missing:
        confirm_artifact("me/nope", "checkpoints/e", None, fake_hub.endpoint, None)
    assert missing.value.reason == "HubRepoNotFound"
    fake_hub.add_file(REPO_ID, "checkpoints/e/best.json", b"{}")
    fake_hub.token = "right"
    with pytest.raises(PermanentError) as denied:
        confirm_artifact(REPO_ID, "checkpoints/e", None, fake_hub.endpoint, "wrong")
    assert denied.value.reason == "HubUnauthorized"
    fake_hub.go_down("refused")
    with pytest.raises(TemporaryError):
        confirm_artifact(REPO_ID, "checkpoints/e", ["best.json"], fake_hub.endpoint, "right", **FAST)


def test_a_sidecar_without_an_artifact() -> None:
    assert artifact_from_sidecar({}) is None
    assert artifact_from_sidecar({"hf_artifact_url": None, "hf_artifact_repo": "a/b"}) is None
    partial = {"hf_artifact_url": "u", "hf_artifact_repo": "a/b", "hf_artifact_path": "p"}
    ref = artifact_from_sidecar({**partial, "hf_artifact_files": ["x"], "hf_artifact_file_count": 5})
    assert ref is not None and ref.files is None


def test_without_huggingface_hub_the_checkpoint_stays(tmp_path: Path, run_env: Path) -> None:
    """On a target whose environment lacks the client: a clear failure, nothing deleted."""
    ck = checkpoint(tmp_path)
    code = "from reconciler import runtime; u = runtime.upload_checkpoint(__import__('sys').argv[1], 'me/x'); print(u)"
    env = {**os.environ, "PYTHONPATH": str(write_bundle(tmp_path / "bundle"))}
    proc = subprocess.run(
        [sys.executable, "-S", "-B", "-c", code, str(ck)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok=False" in proc.stdout and "huggingface_hub is not installed" in proc.stdout
    assert (ck / "sub" / "weights.bin").exists()
    assert "not installed" in runtime.read_sidecar()["hf_upload_error"]
