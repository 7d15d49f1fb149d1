"""A read-only view of the project's files at one revision.

``load/`` reads the desired state through this protocol and never imports ``gitstore``; the engine
passes in a ``gitstore.GitTree`` (the committed tree at HEAD) or, for ``reconcile validate``, a view
of the working tree. Paths are project-relative and use ``/``.
"""

from __future__ import annotations

from typing import Protocol


class Tree(Protocol):
    def read_text(self, relpath: str) -> str | None:
        """The file's text (UTF-8); ``None`` when absent."""
        ...

    def list(self, dirpath: str) -> list[str]:
        """File names (not paths) directly in ``dirpath``, sorted; ``[]`` when absent."""
        ...
