"""Typed JSON records: the manifests and reports posedeploy writes are frozen dataclasses.

:func:`to_json` gives the plain JSON structure (the keys the files have always had, in field order);
:func:`from_json` reads one back and checks every field against its annotation on the way, so that a
damaged or hand-edited file is refused naming the field, instead of failing later as a KeyError
wherever the value is first used. Supported annotations: dataclasses, ``dict[str, T]``,
``list[T]``, ``T | None``, ``str``, ``int``, ``float`` (an int is accepted), ``bool`` and ``Any``.

Field metadata: ``OPTIONAL`` marks a section that older files lack and that is left out of the JSON
when None; ``POSITIVE`` a number that must be > 0; ``NOT_WRITTEN`` a field kept in memory only.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from posedeploy.errors import PoseDeployError

OPTIONAL = {"optional": True}
POSITIVE = {"positive": True}
NOT_WRITTEN = {"json": False}  # held in memory only (per-sample arrays, say), never in the file

T = TypeVar("T")
R = TypeVar("R", bound="Record")


class Record:
    """A dataclass written as JSON: ``to_json()`` and ``Cls.from_json(data)``."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_json(self)
        return data

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        return from_json(cls, data)


def to_json(record: Any) -> Any:
    """``record`` as plain JSON values: dataclasses as objects (optional fields that are None left out)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        out = {}
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            if (value is None and f.metadata.get("optional")) or f.metadata.get("json") is False:
                continue
            out[f.name] = to_json(value)
        return out
    if isinstance(record, dict):
        return {str(k): to_json(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    return record


class RecordError(PoseDeployError):
    """A record's JSON does not have the fields and types its dataclass says."""


def from_json(cls: type[T], data: Any) -> T:
    """An instance of the dataclass ``cls`` from JSON ``data``; RecordError names the first bad field."""
    result: T = _read(cls, data, "")
    return result


def _read(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _read(option, value, where)
            except RecordError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(annotation):
        return _read_dataclass(typing.cast("type[Any]", annotation), value, where)  # a class, not an instance
    if origin is dict:
        _, item = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise _bad(where, value, "a mapping")
        return {str(k): _read(item, v, _join(where, str(k))) for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise _bad(where, value, "a list")
        return [_read(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(where, value, "a number")
        return value
    if annotation in _NAMES:
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise _bad(where, value, _NAMES[annotation])
        return value
    raise TypeError(f"records cannot read {annotation!r} ({where})")


_NAMES = {int: "a whole number", str: "a string", bool: "true or false"}


def _read_dataclass(cls: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise _bad(where, value, "a mapping")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        here = _join(where, f.name)
        if f.metadata.get("json") is False:
            continue
        if f.name not in value:
            if f.metadata.get("optional"):  # a section the file's writer did not have: None, not a default
                kwargs[f.name] = None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"'{here}' is missing")
            continue
        read = _read(hints[f.name], value[f.name], here)
        if f.metadata.get("positive") and read is not None and not read > 0:
            raise _bad(here, read, "a number > 0")
        kwargs[f.name] = read
    return cls(**kwargs)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _bad(where: str, value: Any, expected: str) -> RecordError:
    what = f"'{where}'" if where else "the file"
    return RecordError(f"{what} is {json.dumps(value, default=repr)[:40]}, not {expected}")


def read_record(
    path: Path, cls: type[T], fmt: str, version: int, kind: str, error: Callable[[str], PoseDeployError], remedy: str
) -> T:
    """The ``kind`` record (format ``fmt``, at most ``version``) in the JSON file ``path``; anything
    else is refused with ``error``: one line naming the file, what is wrong, and ``remedy``."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise error(f"{path} is not valid JSON ({type(exc).__name__}: {exc}); {remedy}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path} is not a posedeploy {kind} manifest")
    found = data.get("format_version")
    if isinstance(found, bool) or not isinstance(found, int) or found > version:
        raise error(
            f"{path} has {kind} format version {found}; this posedeploy reads up to {version} "
            f"(upgrade posedeploy, or {remedy} with this version)"
        )
    try:
        return from_json(cls, data)
    except RecordError as exc:
        raise error(f"{path}: {exc}; the manifest was edited or damaged, {remedy}") from None
