"""A fake Hugging Face Hub on loopback: the few endpoints ``create_repo``, ``upload_folder`` (regular
upload mode) and the file listing use, served by a stdlib ``ThreadingHTTPServer`` on 127.0.0.1.

No Hub server can be installed here (``../shared/reference/test-infrastructure.md`` item 6), so the
real ``huggingface_hub`` client talks to this one, pointed at with ``HfApi(endpoint=...)`` or
``HF_ENDPOINT``. Endpoints:

    POST /api/repos/create                         → {"url": ...}; 409 with the url when it exists
    POST /api/validate-yaml                        → no errors (only when a README.md is uploaded)
    POST /api/{type}s/{repo}/preupload/{rev}       → "regular" for every file (no LFS, no Xet)
    POST /api/{type}s/{repo}/commit/{rev}          NDJSON header + file/deletedFile lines
    GET  /api/{type}s/{repo}/tree/{rev}[/{path}]   the listing (``list_repo_tree``/``list_repo_files``)
    POST /api/{type}s/{repo}/paths-info/{rev}      ``get_paths_info``
    GET  /api/{type}s/{repo}[/revision/{rev}]      ``repo_info`` / ``model_info`` (with siblings)

Files are kept in memory; every request is recorded. Switches: ``fail_next(n, status=429)``
answers the next n matching requests with that status (``Retry-After: 0``); ``hidden`` paths are
left out of the listing (a Hub not yet consistent); ``go_down("refused")``
closes the listening socket (connection refused) and ``go_down("503")`` answers 503 to everything;
``come_up()`` undoes both; ``token`` makes every request without ``Bearer <token>`` a 401.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class Request:
    method: str
    path: str
    status: int
    body: bytes = b""


@dataclass
class Commit:
    oid: str
    message: str
    added: list[str]
    deleted: list[str]


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1].oid if self.commits else "0" * 40


@dataclass
class _Failure:
    left: int
    status: int
    match: str | None


class FakeHub:
    """The server and its in-memory repos; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Request] = []
        self.token: str | None = None
        self.hidden: set[str] = set()
        """Paths (or folder prefixes) the listing leaves out, as a Hub not yet consistent would."""
        self._failures: list[_Failure] = []
        self._unavailable = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port = 0

    # -- lifetime -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open (keep-alive) connection: a client sees the Hub gone."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches -----------------------------------------------------------------------------

    def fail_next(self, times: int, status: int = 429, match: str | None = None) -> None:
        """Answer the next ``times`` requests whose path contains ``match`` (all when None) with ``status``."""
        with self._lock:
            self._failures.append(_Failure(times, status, match))

    def go_down(self, how: str = "refused") -> None:
        """``refused``: nothing listens on the port any more; ``503``: every request gets a 503."""
        if how == "refused":
            self.stop()
        elif how == "503":
            self._unavailable = True
        else:
            raise ValueError(f"go_down: {how!r} is neither 'refused' nor '503'")

    def come_up(self) -> None:
        self._unavailable = False
        if self._server is None:
            self.start()  # same port: HTTPServer sets SO_REUSEADDR

    # -- what tests look at -------------------------------------------------------------------

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        repo = self.repos.get((repo_type, repo_id))
        return dict(repo.files) if repo else {}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        repo = self.repos.get((repo_type, repo_id))
        return list(repo.commits) if repo else []

    def paths(self, method: str | None = None) -> list[str]:
        """The recorded request paths (query strings dropped), optionally of one method."""
        return [urlsplit(r.path).path for r in self.requests if method is None or r.method == method]

    def add_file(self, repo_id: str, path: str, data: bytes, repo_type: str = "model") -> None:
        """Put a file straight into a repo (created when missing), as a commit."""
        repo = self._repo_or_create(repo_id, repo_type, private=True)
        repo.files[path] = data
        repo.commits.append(Commit(_oid(path.encode() + data), f"add {path}", [path], []))

    # -- internals ----------------------------------------------------------------------------

    def _repo_or_create(self, repo_id: str, repo_type: str, private: bool) -> Repo:
        with self._lock:
            return self.repos.setdefault((repo_type, repo_id), Repo(repo_id, repo_type, private))

    def _injected(self, path: str) -> int | None:
        if self._unavailable:
            return 503
        with self._lock:
            for failure in self._failures:
                if failure.left > 0 and (failure.match is None or failure.match in path):
                    failure.left -= 1
                    return failure.status
        return None

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"


def _oid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, doc: Any = None, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        payload = json.dumps(doc).encode() if doc is not None else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, code: str | None = None, retry_after: int | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self._send(status, {"error": message}, headers)

    def _handle(self, method: str) -> None:
        body = self._body() if method == "POST" else b""
        path = self.path
        status = self._dispatch(method, path, body)
        self.fake.requests.append(Request(method, path, status, body))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    # -- routing ------------------------------------------------------------------------------

    def _dispatch(self, method: str, raw_path: str, body: bytes) -> int:
        fake = self.fake
        injected = fake._injected(raw_path)
        if injected is not None:
            self._error(injected, f"injected {injected}", retry_after=0 if injected in (429, 503) else None)
            return injected
        if fake.token is not None and self.headers.get("Authorization") != f"Bearer {fake.token}":
            self._error(401, "Invalid credentials in Authorization header")
            return 401
        split = urlsplit(raw_path)
        parts = [unquote(p) for p in split.path.split("/") if p]
        query = parse_qs(split.query)
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create(json.loads(body or b"{}"))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            self._send(200, {"errors": [], "warnings": []})
            return 200
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
            repo_type = REPO_TYPES[parts[1]]
            repo_id = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            repo = fake.repos.get((repo_type, repo_id))
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return 404
            if method == "POST" and len(rest) >= 2 and rest[0] == "preupload":
                files = json.loads(body)["files"]
                answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                self._send(200, {"files": answer, "commitOid": repo.sha})
                return 200
            if method == "POST" and len(rest) >= 2 and rest[0] == "commit":
                return self._commit(repo, body)
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._tree(repo, "/".join(rest[2:]), recursive)
            if method == "POST" and len(rest) >= 2 and rest[0] == "paths-info":
                return self._paths_info(repo, body)
            if method in ("GET", "HEAD") and (not rest or rest[0] == "revision"):
                return self._info(repo)
        self._error(404, f"no such endpoint in the fake hub: {method} {split.path}")
        return 404

    # -- endpoints ----------------------------------------------------------------------------

    def _create(self, payload: dict[str, Any]) -> int:
        fake = self.fake
        name = payload.get("name") or ""
        namespace = payload.get("organization") or "me"
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{name}"
        private = payload.get("private", payload.get("visibility") == "private")
        url = fake.repo_url(repo_type, repo_id)
        if (repo_type, repo_id) in fake.repos:
            self._send(409, {"error": "You already created this repo", "url": url})
            return 409
        fake._repo_or_create(repo_id, repo_type, bool(private))
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})
        return 200

    def _commit(self, repo: Repo, body: bytes) -> int:
        message = ""
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                message = value.get("summary", "")
            elif key == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                self._error(400, f"the fake hub does not take {key!r} operations (regular uploads only)")
                return 400
        with self.fake._lock:
            for path in deleted:
                for existing in list(repo.files):
                    if existing == path or existing.startswith(path.rstrip("/") + "/"):
                        del repo.files[existing]
            repo.files.update(added)
            oid = _oid(repo.sha.encode() + json.dumps(sorted(added)).encode() + body)
            repo.commits.append(Commit(oid, message, sorted(added), deleted))
        url = f"{self.fake.repo_url(repo.repo_type, repo.repo_id)}/commit/{oid}"
        self._send(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})
        return 200

    def _entries(self, repo: Repo, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        base = prefix.strip("/")
        start = f"{base}/" if base else ""
        files = sorted(p for p in repo.files if p.startswith(start) and not self._hidden(p))
        out: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in files:
            rel = path[len(start) :]
            dirs = rel.split("/")[:-1]
            for i in range(1, len(dirs) + 1):
                if not recursive and i > 1:
                    break
                folders.add(start + "/".join(dirs[:i]))
            if recursive or len(dirs) == 0:
                data = repo.files[path]
                out.append({"type": "file", "oid": _oid(data), "size": len(data), "path": path})
        out.extend({"type": "directory", "oid": _oid(d.encode()), "size": 0, "path": d} for d in sorted(folders))
        return out

    def _hidden(self, path: str) -> bool:
        return any(path == h or path.startswith(h.rstrip("/") + "/") for h in self.fake.hidden)

    def _tree(self, repo: Repo, prefix: str, recursive: bool) -> int:
        base = prefix.strip("/")
        if base and base not in repo.files and not any(p.startswith(base + "/") for p in repo.files):
            self._error(404, f"{base} does not exist on main", "EntryNotFound")
            return 404
        self._send(200, self._entries(repo, base, recursive))
        return 200

    def _paths_info(self, repo: Repo, body: bytes) -> int:
        text = body.decode()
        form = not text.lstrip().startswith("{")
        wanted = parse_qs(text).get("paths", []) if form else json.loads(text).get("paths", [])
        out: list[dict[str, Any]] = []
        for path in wanted:
            if self._hidden(path):
                continue
            if path in repo.files:
                data = repo.files[path]
                out.append({"type": "file", "oid": _oid(data), "size": len(data), "path": path})
            elif any(p.startswith(path.rstrip("/") + "/") for p in repo.files):
                out.append({"type": "directory", "oid": _oid(path.encode()), "size": 0, "path": path})
        self._send(200, out)
        return 200

    def _info(self, repo: Repo) -> int:
        doc = {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.sha,
            "private": repo.private,
            "siblings": [{"rfilename": p} for p in sorted(repo.files)],
            "tags": [],
            "downloads": 0,
            "likes": 0,
        }
        self._send(200, doc)
        return 200
