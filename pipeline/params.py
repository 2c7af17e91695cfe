"""Typed access to ``params.yaml``.

Each stage reads only its own sections, each into a frozen dataclass. Parsing is strict: an unknown,
missing or mistyped key raises :class:`ParamsError` naming the key and the file, so a typo in
``dvc exp run -S source.audiocaps.miror=...`` stops the stage instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from pipeline.errors import PipelineError

T = TypeVar("T")


class ParamsError(PipelineError, ValueError):
    """A params file that does not match what a stage reads."""


@dataclasses.dataclass(frozen=True)
class BaseParams:
    """The ``base`` section, shared by every stage that needs it.

    Args:
        seed: drives Python, NumPy and torch randomness in every stage.
        sample_rate: the audio rate of every stage after the source, Hz (the paper: 11,025).
        device: where detect, graphs, train and evaluate run: ``auto`` (CUDA when a GPU is
            visible), ``cpu``, ``cuda`` or ``cuda:N`` (:mod:`pipeline.device`).
    """

    seed: int
    sample_rate: int
    device: str = "auto"

    def __post_init__(self) -> None:
        from pipeline.device import check_device_name

        check_device_name(self.device)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of str to {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, file: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, file)
            except ParamsError:
                pass
        raise ParamsError(f"{file}: {key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ParamsError(f"{file}: {key}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{file}: {key}: expected {_type_name(tp)}, got {value!r}")
        (item,) = get_args(tp)
        return tuple(_convert(v, item, f"{key}[{i}]", file) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ParamsError(f"{file}: {key}: expected {_type_name(tp)}, got {value!r}")
        item = get_args(tp)[1]
        return {k: _convert(v, item, f"{key}.{k}", file) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key, file)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:  # pragma: no cover - a programming error in a params dataclass
        raise TypeError(f"unsupported params type {tp!r} for {key}")
    raise ParamsError(f"{file}: {key}: expected {_type_name(tp)}, got {value!r}")


def parse(cls: type[T], data: Any, section: str, file: str = "params.yaml") -> T:
    """Parse one params section into the frozen dataclass ``cls``.

    Lists become tuples so the result stays hashable and immutable.

    Raises:
        ParamsError: for an unknown, missing or mistyped key (the message names key and file).
    """
    if not isinstance(data, dict):
        raise ParamsError(f"{file}: {section}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"{file}: unknown key {section}.{unknown[0]} (known keys of {section}: "
            f"{', '.join(sorted(fields))})"
        )
    values = {}
    for name, field in fields.items():
        key = f"{section}.{name}"
        if name not in data:
            if field.default is not dataclasses.MISSING:
                continue
            raise ParamsError(f"{file}: missing key {key}")
        values[name] = _convert(data[name], hints[name], key, file)
    try:
        return cls(**values)
    except ValueError as err:  # a dataclass's own __post_init__ check
        raise ParamsError(f"{file}: {section}: {err}") from err


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params file, failing clearly when it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    with path.open() as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def load(sections: dict[str, type], path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load the named sections of a params file, each into its dataclass.

    Args:
        sections: a stage's ``PARAMS``: section name -> frozen dataclass type, or a dotted key ->
            a plain type (``{"base.sample_rate": int}``) for a stage that reads one key of a
            shared section.
        path: the params file.

    Returns:
        name -> parsed dataclass instance or value.
    """
    data = read_yaml(path)
    out = {}
    for name, cls in sections.items():
        node: Any = data
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                kind = "section" if dataclasses.is_dataclass(cls) else "key"
                raise ParamsError(f"{path}: missing {kind} {name}")
            node = node[part]
        if dataclasses.is_dataclass(cls):
            out[name] = parse(cls, node, name, str(path))
        else:
            out[name] = _convert(node, cls, name, str(path))
    return out


def key_paths(cls: type, prefix: str) -> set[str]:
    """Every leaf key path a params dataclass reads, e.g. ``source.audiocaps.mirror``."""
    if not dataclasses.is_dataclass(cls):
        return {prefix}
    hints = get_type_hints(cls)
    paths: set[str] = set()
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        key = f"{prefix}.{field.name}"
        if dataclasses.is_dataclass(tp):
            paths |= key_paths(tp, key)
        else:
            paths.add(key)
    return paths
