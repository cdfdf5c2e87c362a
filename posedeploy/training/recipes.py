"""Recipe files: a training run named by a small, commented TOML file (``recipes/*.toml``).

A recipe sets the fields of :class:`~posedeploy.training.runs.LifterRunSettings` (``kind = "lifter"``)
or :class:`~posedeploy.training.runs.AVGRunSettings` (``kind = "avg"``) by name; flags given on the
command line override it, and what neither sets keeps its default. Paths in a recipe are read as a
command line's are: relative to the folder the command runs in.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from posedeploy.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

S = TypeVar("S")


def read_recipe(path: str | Path, kind: str) -> dict[str, Any]:
    """The settings a recipe file sets (without its ``kind``), refused unless it is a ``kind`` recipe."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"recipe not found: {path}")
    try:
        values: dict[str, Any] = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a TOML recipe: {exc}") from None
    found = values.pop("kind", None)
    if found != kind:
        raise InputError(f'{path} is a recipe of kind {found!r}, not {kind!r} (set kind = "{kind}" in it)')
    return values


def settings_from(cls: type[S], recipe: str | Path | None, kind: str, overrides: dict[str, Any]) -> S:
    """``cls`` (a frozen settings dataclass) from a recipe file, then ``overrides`` (flags given)."""
    values = read_recipe(recipe, kind) if recipe is not None else {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(
            f"{recipe}: unknown setting(s) {', '.join(unknown)}; a {kind} recipe sets {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    converted = {name: _convert(value, hints[name], f"{recipe}: {name}") for name, value in values.items()}
    return cls(**{**converted, **overrides})


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """A TOML value as the field's type (paths from strings, tuples from arrays), or an InputError."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    if options:
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, where)
            except InputError as exc:
                errors.append(exc)
        raise errors[0]
    if typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list, got {value!r}")
        return tuple(_convert(v, item, where) for v in value)
    if annotation is Path:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a path (a string), got {value!r}")
        return Path(value)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (
        annotation in (int, str, bool)
        and isinstance(value, annotation)
        and not (annotation is int and isinstance(value, bool))
    ):
        return value
    raise InputError(f"{where} must be {getattr(annotation, '__name__', annotation)}, got {value!r}")
