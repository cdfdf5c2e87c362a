"""Atomic file writes: an artifact appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp made it private: give it the permissions a plain open() would
            tmp_path.chmod(0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


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
