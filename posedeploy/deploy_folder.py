"""The output folder of ``posedeploy deploy``: what an earlier deploy there owns, and replacing it.

A deploy is assembled in a stage folder beside ``--out`` and swapped in whole at the end. An
earlier deploy is replaced only when every file in the folder is one its report lists, with the
size and hash it had when written (its report.json names them): a file the user added or edited
there is never deleted; the deploy refuses and names it instead.

The swap is two renames (the earlier folder into a ``.NAME.XXXXXXXX.old`` folder, the stage onto
``NAME``). A deploy killed between them leaves ``NAME`` missing; the next deploy into ``NAME``,
holding the same lock, puts the earlier folder back before it looks at anything, and removes the
stages and old folders that killed runs left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posedeploy.errors import InputError
from posedeploy.files import file_lock, sha256_file

logger = logging.getLogger(__name__)

FORMAT = "posedeploy.deploy"
REPORT_JSON = "report.json"
REPORT_MD = "REPORT.md"
STAGE, OLD = "partial", "old"
SHOWN = 5  # file names quoted in an error


@contextlib.contextmanager
def deploy_lock(out: Path) -> Iterator[None]:
    """One deploy at a time into ``out`` (the lock lives beside it, so it outlasts the swap)."""
    with file_lock(out.parent / f".{out.name}.deploy.lock", f"deploy into {out}", "deploy into another folder"):
        yield


def _sibling(out: Path, kind: str) -> Path:
    """A new, empty ``.NAME.XXXXXXXX.KIND`` folder beside ``out``."""
    while True:
        path = out.parent / f".{out.name}.{secrets.token_hex(4)}.{kind}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _siblings(out: Path, kind: str) -> list[Path]:
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[0-9a-f]{{8}}\.{kind}")
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def new_stage(out: Path) -> Path:
    return _sibling(out, STAGE)


def recover(out: Path) -> None:
    """Undo what a deploy killed mid-way left beside ``out`` (call with :func:`deploy_lock` held)."""
    for old in _siblings(out, OLD):
        earlier = old / out.name
        if not out.exists() and earlier.is_dir() and _listing(earlier) is not None:
            os.replace(earlier, out)
            logger.info(f"deploy: {out} is back: a deploy killed while replacing it had moved it to {old.name}")
        shutil.rmtree(old, ignore_errors=True)
    for stage in _siblings(out, STAGE):
        logger.info(f"deploy: removing {stage.name}, the unfinished folder of a killed deploy")
        shutil.rmtree(stage, ignore_errors=True)


def _listing(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The files an earlier deploy in ``folder`` wrote, by relative path (None: not a deploy)."""
    try:
        report = json.loads((folder / REPORT_JSON).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(report, dict) or report.get("format") != FORMAT or not isinstance(report.get("files"), dict):
        return None
    files = {name: entry for name, entry in report["files"].items() if isinstance(entry, dict)}
    if report.get("format_version") == 1:  # written before REPORT.md was listed with its hash
        files.setdefault(REPORT_MD, {"any": True})
    return files


def _strangers(folder: Path, owned: dict[str, dict[str, Any]]) -> list[str]:
    """Everything in ``folder`` that is not a file ``owned`` lists, unchanged since (symbolic links
    and folders that hold no listed file included), as relative paths."""
    owned_dirs = {str(parent) for name in owned for parent in Path(name).parents if str(parent) != "."}
    found = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        for name in sorted(dirs):
            rel = str(rel_root / name)
            if (Path(root) / name).is_symlink() or rel not in owned_dirs:
                found.append(rel + "/")
        dirs[:] = [d for d in dirs if str(rel_root / d) in owned_dirs and not (Path(root) / d).is_symlink()]
        for name in sorted(files):
            rel, path = str(rel_root / name), Path(root) / name
            if rel == REPORT_JSON:
                continue
            entry = owned.get(rel)
            if entry is None or path.is_symlink() or not path.is_file() or not _unchanged(path, entry):
                found.append(rel)
    return sorted(found)


def _unchanged(path: Path, entry: dict[str, Any]) -> bool:
    if entry.get("any"):
        return True
    return path.stat().st_size == entry.get("bytes") and sha256_file(path) == entry.get("sha256")


def check_replaceable(out: Path) -> None:
    """Refuse an ``out`` that holds anything but an earlier deploy's own, unchanged files."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    owned = _listing(out)
    if owned is None:
        held = sorted(p.name for p in out.iterdir())
        raise InputError(
            f"{out} already holds {len(held)} entr{'y' if len(held) == 1 else 'ies'} ({', '.join(held[:3])}"
            f"{', ...' if len(held) > 3 else ''}) and is not an earlier deploy; choose a new or empty folder"
        )
    strangers = _strangers(out, owned)
    if strangers:
        shown = ", ".join(strangers[:SHOWN]) + (f" and {len(strangers) - SHOWN} more" if len(strangers) > SHOWN else "")
        one = len(strangers) == 1
        raise InputError(
            f"{out} is an earlier deploy, but it also holds {len(strangers)} entr{'y' if one else 'ies'} that deploy "
            f"did not write, or that changed since ({shown}): a deploy replaces only its own files; move "
            f"{'it' if one else 'them'} out of {out}, or deploy into another folder"
        )


def replace(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` to ``out``, swapping out an earlier deploy if there is one."""
    check_replaceable(out)  # again: the user may have added a file while this deploy ran
    if out.exists():
        old = _sibling(out, OLD)
        os.replace(out, old / out.name)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out)
