"""Atomic file writes: an artifact appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place if the block succeeds.

    The temporary name starts with '.' and ends in '.partial' so that no later command mistakes an
    interrupted write for a finished artifact; it is removed when the block fails.
    """
    from posedeploy.errors import WriteError

    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a directory; give a file name")
    check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
    except OSError as exc:  # a read-only or full disk, a parent that is a file, no permission
        raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp made it private: give it the permissions a plain open() would
            tmp_path.chmod(0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {_reason(exc)}") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_writable(path: str | Path) -> None:
    """Refuse, before any work, an output whose nearest existing ancestor is a file or is not writable."""
    from posedeploy.errors import WriteError

    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise WriteError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise WriteError(f"cannot write {path}: {os.strerror(errno.EACCES)} ({existing})")


def make_folder(folder: str | Path) -> Path:
    """``folder``, created with its parents; failures as one-line WriteErrors."""
    from posedeploy.errors import WriteError

    folder = Path(folder)
    check_writable(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot write into {folder}: {_reason(exc)}") from None
    return folder


def _reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite_json(data: object) -> object:
    """``data`` with every NaN or infinite float replaced by None, so that it is strict JSON (a
    statistic that is undefined, like a correlation of constants, becomes null)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | Path, data: object) -> None:
    """Strict JSON (no NaN or Infinity tokens), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(finite_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def cache_root() -> Path:
    """Where posedeploy keeps its caches: $POSEDEPLOY_CACHE, else ~/.cache/posedeploy."""
    return Path(os.environ.get("POSEDEPLOY_CACHE") or Path.home() / ".cache" / "posedeploy")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_overwrite(out: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse to write ``out`` over one of the command's own inputs (named by option)."""
    from posedeploy.errors import InputError

    target = Path(out).resolve()
    for option, path in inputs.items():
        if path is not None and Path(path).exists() and Path(path).resolve() == target:
            raise InputError(f"the output {out} is the {option} input itself; write the result elsewhere")


LOCK_NAME = ".posedeploy.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the block: a second posedeploy writing into the same folder
    (another export, another training run) fails at once instead of interleaving its files."""
    folder = make_folder(folder)
    with file_lock(folder / LOCK_NAME, str(folder), f"{what} into another folder"):
        yield


@contextlib.contextmanager
def file_lock(path: Path, held: str, instead: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the block; a second holder fails at once with
    "{held} is being written by {pid}; wait for it, or {instead}". The file is removed after."""
    import fcntl

    from posedeploy.errors import InputError

    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder removes the file when done: a lock on a file no longer at ``path`` is no lock.
            if not path.exists() or os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                raise BlockingIOError
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"{held} is being written by {holder}; wait for it, or {instead}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"posedeploy (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
