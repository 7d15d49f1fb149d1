"""``reconcile dashboard``: a live local web page over a project's committed state.

One process serves one project. Everything shown is read from the commit HEAD points at (the
same tree a pass reads), so the page is an exact picture of one commit, and it moves on when
the ref does:

- ``source``: read a ``Snapshot`` (desired state, recorded status, env verdicts, results, design
  tables) from the committed tree, cached by commit.
- ``views``: pure builders from a ``Snapshot`` to the JSON the API and the page use.
- ``pages``: the experiments a page at a time (filters, search, sort) from an index built once
  per snapshot, and each snapshot's answers encoded once.
- ``live``: watch the git ref (polled every 0.5 s) and fan the new commit out to SSE subscribers.
- ``actions``: what a button or an on-demand request does (a decision through ``reconcile
  resolve``, a log tail through the target's transport, an experiment's git history).
- ``auth``: the token required whenever the server listens on more than loopback.
- ``server``: the stdlib ``ThreadingHTTPServer``, its routes, the static page in ``static/``.
"""

from __future__ import annotations

from reconciler.dashboard.server import Dashboard, serve

__all__ = ["Dashboard", "serve"]
