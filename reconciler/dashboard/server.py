"""The HTTP server: the page, its static files, the JSON API under ``/api/`` and the SSE stream.

A stdlib ``ThreadingHTTPServer`` (one thread per connection, so an open event stream never
blocks a request). Every request passes ``auth.Guard`` first. Routes (``docs/dashboard.md``):

    GET  /                                 the page (static/index.html)
    GET  /static/<file>                    its CSS and JS (vendored; nothing from a CDN)
    GET  /api/summary | tables | escalations | targets | plots   what the page loads (by view)
    GET  /api/experiments                  the rows, filtered; ?offset=&limit= a page of them (``pages``)
    GET  /api/snapshot                     everything at once (older clients; not the page)
    GET  /api/experiments/<id>             one experiment: attempts, escalation, sidecar, curves
    GET  /api/experiments/<id>/history     its transitions, from git
    GET  /api/experiments/<id>/log         its log tail, read on its target (?attempt=&lines=)
    GET  /api/health                       the last pass's metrics (.reconciler/metrics.json) + stale
    GET  /api/events                       Server-Sent Events: {"type": "commit"} on each new commit
    POST /api/decisions                    {"action", "exp_id" | "stage", "note"}: reconcile resolve
    GET  /api/projects | gpus | dispatch | exp-table/<p>[/<t>] | research/<p> | steps/<p>/<id> | logfile/<p>/<id>
                                           the seed dashboard's routes and shapes (``seedapi``)
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reconciler.dashboard import actions, body, pages, seedapi, views
from reconciler.dashboard.auth import Guard, is_loopback
from reconciler.dashboard.live import Broadcaster, HeadWatcher, RefReader
from reconciler.dashboard.source import Snapshot, SnapshotCache, result_files
from reconciler.errors import ReconcilerError
from reconciler.passmetrics import MetricsUnavailable, read_metrics

STATIC = Path(__file__).resolve().parent / "static"
SEED_ROUTES = frozenset({"projects", "gpus", "dispatch", "exp-table", "research", "steps", "logfile"})
"""The seed dashboard's read routes, answered by ``seedapi`` (its scripts and page keep working)."""
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
KEEPALIVE = 15.0
REQUEST_TIMEOUT = 60.0
"""Seconds a connection may stay silent (a request line or headers sent slowly, an idle keep-alive)."""
JSON = "application/json; charset=utf-8"


class Dashboard:
    """One project's dashboard: the server, the ref watcher and the snapshot cache."""

    def __init__(
        self, project_dir: Path, *, bind: str = "127.0.0.1", port: int = 8080, token: str | None = None
    ) -> None:
        self.project_dir = project_dir.resolve()
        self.guard = Guard(bind, token)
        self.cache = SnapshotCache(self.project_dir)
        self.pages = pages.Pages()
        self.broadcaster = Broadcaster()
        self.watcher = HeadWatcher(RefReader(self.project_dir), self.broadcaster, self._refresh)
        server_class = _V6Server if ":" in bind else _Server
        self.httpd = server_class((bind, port), _Handler)
        self.httpd.dashboard = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.guard.bind
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def _refresh(self, commit: str | None) -> Snapshot:
        """A new commit: its snapshot and the page's first answers, before the pages are told."""
        snap = self.cache.get(commit)
        self.pages.warm(snap)
        return snap

    def snapshot(self) -> Snapshot:
        return self.cache.get(self.watcher.current)

    def warm(self) -> None:
        """Build the snapshot and the first paint's answers now (at start: before the page asks)."""
        with contextlib.suppress(Exception):  # the first request builds it again and answers the error
            self._refresh(self.watcher.current)

    def _start_watching(self) -> None:
        self.watcher.start()
        threading.Thread(target=self.warm, name="dashboard-warm", daemon=True).start()

    def start(self) -> Dashboard:
        """Serve in a background thread (for tests and embedding); ``stop`` ends it."""
        self._start_watching()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._start_watching()
        try:
            self.httpd.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        self.watcher.stop()
        self.broadcaster.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    dashboard: Dashboard


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def dash(self) -> Dashboard:
        return self.server.dashboard

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the dashboard logs refusals and errors only (``log_error``)."""

    def log_error(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"dashboard: {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, doc: Any, status: int = 200) -> None:
        self._send(status, pages.encode(doc), JSON)

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message, "status": status}, status)

    def _admit(self) -> tuple[str, dict[str, list[str]]] | None:
        """Path and query of an admitted request; ``None`` when the answer was already sent."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        token = query["token"][0] if query.get("token") else None
        refusal = self.dash.guard.check(self.command, dict(self.headers.items()), token)
        if refusal is not None:
            self.log_error("refused %s %s: %s", self.command, parts.path, refusal.reason)
            self.close_connection = True  # an unread body must not be taken for the next request
            self._error(refusal.status, refusal.reason)
            return None
        if token is not None and self.command == "GET" and not parts.path.startswith("/api/"):
            # A ?token= link: set the cookie, then show the same page without the token in the URL.
            rest = "&".join(f"{k}={v}" for k, vs in query.items() if k != "token" for v in vs)
            where = parts.path + (f"?{rest}" if rest else "")
            self._send(303, b"", "text/plain", {"Location": where, "Set-Cookie": self.dash.guard.cookie()})
            return None
        return unquote(parts.path), query

    # -- methods -----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        admitted = self._admit()
        if admitted is None:
            return
        path, query = admitted
        try:
            self._get(path, query)
        except (actions.BadRequest, pages.BadQuery) as exc:
            self._error(exc.status, str(exc))
        except ReconcilerError as exc:
            self._error(500, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # a bug: an answer, not a dropped connection and a traceback on stderr
            self.log_error("%s %s failed: %s: %s", self.command, path, type(exc).__name__, exc)
            self._error(500, f"internal error ({type(exc).__name__})")

    def do_POST(self) -> None:
        admitted = self._admit()
        if admitted is None:
            return
        path, _ = admitted
        if path != "/api/decisions":
            self._error(404, f"no POST route {path}")
            return
        try:
            try:
                length = body.content_length(self.headers)
                raw = body.read_exactly(self.rfile.read1, self.connection, length)
            except actions.BadRequest:
                self.close_connection = True  # the body was not read: it must not be taken for a request
                raise
            request = actions.DecisionRequest.from_json(body.parse_body(raw))
            known = {e.id for e in self.dash.snapshot().state.entries}
            result = actions.decide(self.dash.project_dir, request, known)
            self._json(result, 200 if result["ok"] else 409)
        except actions.BadRequest as exc:
            self.log_error("refused POST %s: %s", path, exc)
            self._error(exc.status, str(exc))
        except ReconcilerError as exc:
            self._error(500, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # a bug: an answer, not a dropped connection and a traceback on stderr
            self.log_error("%s %s failed: %s: %s", self.command, path, type(exc).__name__, exc)
            self._error(500, f"internal error ({type(exc).__name__})")

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/") :])
        elif path == "/api/events":
            self._events()
        elif path.startswith("/api/"):
            self._api(path[len("/api/") :].strip("/"), query)
        else:
            self._error(404, f"no route {path}")

    def _static(self, name: str) -> None:
        file = (STATIC / name).resolve()
        if not file.is_relative_to(STATIC) or not file.is_file() or file.suffix not in TYPES:
            self._error(404, f"no file {name}")
            return
        self._send(200, file.read_bytes(), TYPES[file.suffix])

    def _api(self, route: str, query: dict[str, list[str]]) -> None:
        snap = self.dash.snapshot()
        if route in pages.CACHED:
            self._send(200, self.dash.pages.encoded(snap, route), JSON)
        elif route == "experiments":
            self._json(self.dash.pages.index(snap).answer(pages.parse_query(query)))
        elif route == "health":
            self._json(self._health(snap))
        elif route.split("/", maxsplit=1)[0] in SEED_ROUTES:
            self._seed(snap, route)
        elif route.startswith("experiments/"):
            self._experiment(snap, route[len("experiments/") :], query)
        else:
            self._error(404, f"no route /api/{route}")

    def _seed(self, snap: Snapshot, route: str) -> None:
        """The seed dashboard's read routes (``seedapi``); ``<p>`` must name this project."""
        name, *args = route.split("/")
        if name == "projects" and not args:
            self._json(seedapi.projects(snap))
        elif name == "dispatch" and not args:
            self._json(seedapi.dispatch(snap))
        elif name == "gpus" and not args:
            self._json(seedapi.gpus(snap))
        elif not args or args[0] != snap.project:
            unknown = {"exp-table": {"found": False, "rows": [], "cols": [], "cells": []}, "steps": {"steps": []}}
            if name in unknown:
                self._json(unknown[name])
            elif name == "logfile":
                self._json({"found": False, "content": ""})
            else:
                self._error(404, f"no project {args[0] if args else ''!r} here")
        elif name == "exp-table" and len(args) <= 2:
            kind = args[1] if len(args) == 2 else "pilot"
            if kind not in seedapi.KINDS:
                raise actions.BadRequest(f"table type {kind!r} is not pilot or full")
            self._json(seedapi.exp_table(snap, kind))
        elif name == "research" and len(args) == 1:
            self._json(seedapi.research(snap))
        elif name == "steps" and len(args) == 2:
            self._json(seedapi.steps(snap, args[1]))
        elif name == "logfile" and len(args) == 2:
            self._json(actions.notes_file(self.dash.project_dir, snap.commit, args[1]))
        else:
            self._error(404, f"no route /api/{route}")

    def _health(self, snap: Snapshot) -> dict[str, Any]:
        """Read on every request, not cached by commit: a pass that commits nothing changes it too."""
        try:
            metrics, problem = read_metrics(self.dash.project_dir), None
        except MetricsUnavailable as exc:
            metrics, problem = None, str(exc)
        return views.health(snap, metrics, datetime.now(timezone.utc), problem)

    def _experiment(self, snap: Snapshot, rest: str, query: dict[str, list[str]]) -> None:
        exp_id, _, what = rest.partition("/")
        rows = self.dash.pages.index(snap).by_id
        detail = views.experiment_detail(snap, exp_id, rows, result_files(snap, exp_id)) if exp_id in rows else None
        if detail is None:
            raise actions.BadRequest(f"no experiment {exp_id!r}", status=404)
        if what == "":
            self._json(detail)
        elif what == "history":
            self._json(actions.history(self.dash.project_dir, exp_id))
        elif what == "log":
            entry = snap.state.get(exp_id)
            if entry is None or snap.desired is None:
                raise actions.BadRequest(f"{exp_id} has not run yet", status=404)
            attempt = _int(query["attempt"][0]) if query.get("attempt") else None
            lines = _int((query.get("lines") or ["200"])[0]) or 200
            self._json(actions.log_tail(self.dash.project_dir, snap.desired.config, entry, attempt, lines))
        else:
            self._error(404, f"no route /api/experiments/{exp_id}/{what}")

    def _events(self) -> None:
        """Server-Sent Events: ``hello`` with the current commit, then one ``commit`` per change."""
        q = self.dash.broadcaster.subscribe()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            hello = {"type": "hello", "commit": self.dash.watcher.current}
            self.wfile.write(f"retry: 1000\ndata: {json.dumps(hello)}\n\n".encode())
            self.wfile.flush()
            while True:
                try:
                    event = q.get(timeout=KEEPALIVE)
                except Exception:  # queue.Empty: a comment keeps proxies and the browser attached
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                if event is None:
                    break
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            self.dash.broadcaster.unsubscribe(q)
            self.close_connection = True


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def serve(
    project_dir: Path,
    *,
    bind: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted. A non-loopback ``bind`` without ``token`` gets a generated one,
    announced once with the link that carries it."""
    from reconciler.dashboard.auth import new_token

    if token is None and not is_loopback(bind):
        token = new_token()
    dash = Dashboard(project_dir, bind=bind, port=port, token=token)
    link = dash.url + (f"?token={token}" if token else "")
    announce(f"dashboard for {dash.project_dir} at {link}")
    if token:
        announce("the token is printed only this once; every request needs it (header, cookie or ?token=)")
    try:
        dash.serve_forever()
    except KeyboardInterrupt:
        announce("dashboard stopped")
