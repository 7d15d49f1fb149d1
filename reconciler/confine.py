"""Every write of the controller stays inside the project (issue 15, item 1).

A collaborator can commit a symlink (``progress -> /home/me``, ``experiments/results/x -> ~``):
git checks it out as a link, and an ordinary ``open()`` follows it. Here a path is walked from the
project's root one component at a time, each directory opened with ``O_NOFOLLOW | O_DIRECTORY``
relative to the one before (``dir_fd``), so a symlinked component anywhere below the root is
refused at the moment of the write, even one swapped in during a pass; the file itself is then
created, renamed or appended to relative to its parent's descriptor, with ``O_NOFOLLOW``.

The root is the project's directory (where ``.git`` is); it and its ancestors are the user's
choice and are not checked. A refusal is ``UnsafePathError`` (a ``ConfigError``: exit 2) naming
the path: ``progress/ is a symlink (to /home/me): refusing to write outside the project``.

``check_tree`` is the early form: a pass calls it before it touches a target or writes anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from reconciler.errors import UnsafePathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def project_root(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` (itself excluded) holding ``.git``; ``None`` outside a
    project (then only the last component is protected)."""
    directory = path.absolute().parent
    for _ in range(128):
        if os.path.lexists(directory / ".git"):
            return directory
        if directory.parent == directory:
            return None
        directory = directory.parent
    return None


def split(path: Path, root: Path | None = None) -> tuple[Path, tuple[str, ...]]:
    """``(root, parts)``: ``path`` relative to its project root (or to its parent outside one)."""
    path = path.absolute()
    root = project_root(path) if root is None else root.absolute()
    if root is None or not path.is_relative_to(root):
        return path.parent, (path.name,)
    parts = path.relative_to(root).parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise UnsafePathError(f"{path}: refusing to write outside the project")
    return root, parts


def refusal(root: Path, parts: Iterable[str], *, writing: bool = True) -> UnsafePathError:
    """The error for the first unsafe component ``parts`` (project-relative) under ``root``."""
    rel = "/".join(parts)
    full = root.joinpath(rel)
    try:
        st = full.lstat()
    except OSError:
        return UnsafePathError(f"{rel}: cannot be reached inside the project: refusing to write there")
    if stat.S_ISLNK(st.st_mode):
        try:
            to = os.readlink(full)
        except OSError:
            to = "?"
        kind = "/" if writing or full.is_dir() else ""
        return UnsafePathError(f"{rel}{kind} is a symlink (to {to}): refusing to write outside the project")
    return UnsafePathError(f"{rel} is not a directory: refusing to write there")


def open_dir(root: Path, parts: tuple[str, ...], *, create: bool = True) -> int:
    """A descriptor of ``root/parts...`` reached without following a symlink (directories made
    with ``create``); ``UnsafePathError`` for a symlink or a non-directory on the way."""
    if create and not parts:  # outside a project: the parent is made the ordinary way
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise refusal(root, parts[: i + 1]) from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise refusal(root, parts[: i + 1]) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def parent_dir(path: Path, *, create: bool = True, root: Path | None = None) -> Iterator[tuple[int, str]]:
    """``with parent_dir(p) as (dir_fd, name)``: the confined parent of ``p``, opened, and the
    file's name in it. The name itself must not be a symlink either."""
    base, parts = split(Path(path), root)
    fd = open_dir(base, parts[:-1], create=create)
    try:
        name = parts[-1]
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
                raise refusal(base, parts, writing=False)
        yield fd, name
    finally:
        os.close(fd)


def open_file(path: Path, flags: int, mode: int = 0o666, *, root: Path | None = None) -> int:
    """``os.open`` of ``path`` with ``O_NOFOLLOW``, every parent confined (created as needed)."""
    with parent_dir(path, root=root) as (fd, name):
        try:
            return os.open(name, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                base, parts = split(Path(path), root)
                raise refusal(base, parts, writing=False) from None
            raise


def check_path(project_dir: Path, rel: str) -> None:
    """Refuse (``UnsafePathError``) when an existing component of ``rel`` (project-relative) is a
    symlink or a parent is not a directory; missing components are fine (they will be made)."""
    current = project_dir
    parts = tuple(p for p in rel.split("/") if p)
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or (i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode)):
            raise refusal(project_dir, parts[: i + 1], writing=i < len(parts) - 1 or stat.S_ISDIR(st.st_mode))


def check_tree(project_dir: Path, dirs: Iterable[str], files: Iterable[str] = ()) -> None:
    """The early check of a pass: each of ``dirs`` (project-relative; a trailing ``/**`` includes
    everything below it) and ``files`` is not, and has no component that is, a symlink."""
    for rel in files:
        check_path(project_dir, rel)
    for spec in dirs:
        deep = spec.endswith("/**")
        rel = spec.removesuffix("/**")
        check_path(project_dir, rel)
        base = project_dir / rel
        if deep:
            _no_link_below(project_dir, base)


def _no_link_below(project_dir: Path, directory: Path) -> None:
    """``UnsafePathError`` for the first symlink anywhere below ``directory`` (``scandir``: the
    entry types come with the listing, so a results dir of 10,000 files costs one pass over it;
    a stack, not recursion: a committed tree may be nested thousands deep)."""
    stack = [directory]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_symlink():
                where = Path(entry.path).relative_to(project_dir).parts
                raise refusal(project_dir, where, writing=False)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))


def read_file(project_dir: Path, rel: str, limit: int) -> bytes:
    """The bytes of the project's regular file ``rel``, read without following a link in any of
    its components (``check_path``, then ``O_NOFOLLOW``): ``FileNotFoundError`` when it is absent,
    ``UnsafePathError`` when a component is a link, ``ValueError`` when it is not a regular file
    or holds more than ``limit`` bytes."""
    check_path(project_dir, rel)
    fd = os.open(project_dir / rel, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{rel}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{rel}: over {limit} bytes")
    return data
