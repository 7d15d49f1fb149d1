"""The project's working tree as a ``reconciler.model.tree.Tree``.

Where loading starts for ``reconcile validate`` (the engine passes the committed tree from
``gitstore`` instead). Read-only: nothing here writes, creates or touches a file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from reconciler.errors import ConfigError


class UnreadableFileError(ConfigError):
    """A file of the project exists but cannot be read as UTF-8 text."""

    def __init__(self, path: str, reason: str, line: int = 1, column: int = 1) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(f"{path}:{line}:{column}: cannot read: {reason}")


class WorkTree:
    """Files under ``root`` on this machine, addressed by project-relative ``/`` paths."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"WorkTree({str(self.root)!r})"

    def _path(self, relpath: str) -> Path:
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"not a project-relative path: {relpath!r}")
        return self.root.joinpath(*rel.parts)

    def read_text(self, relpath: str) -> str | None:
        """The file's text, ``None`` when there is no such file."""
        path = self._path(relpath)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise UnreadableFileError(relpath, exc.strerror or type(exc).__name__) from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise UnreadableFileError(relpath, "not UTF-8 text", line, column) from exc

    def list(self, dirpath: str) -> list[str]:
        """Names of the files directly in ``dirpath``, sorted; ``[]`` when it is not a directory."""
        path = self._path(dirpath) if dirpath not in ("", ".") else self.root
        try:
            return sorted(entry.name for entry in path.iterdir() if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise UnreadableFileError(dirpath, exc.strerror or type(exc).__name__) from exc
