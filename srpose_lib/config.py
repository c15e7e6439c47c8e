"""Dataclass configuration helpers shared by every stage.

Configs are (nested) dataclasses. This module turns them into plain dicts, hashes their
semantic fields for the checkpoint cache, and applies overrides by field name with a clear
error for unknown names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from .errors import ConfigError, did_you_mean


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a (nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=_json_default))


def _json_default(obj):
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in a config")


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short SHA-256 of a JSON-serialisable object with sorted keys."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def field_names(cfg) -> list[str]:
    """Dotted names of every leaf field of a nested dataclass."""
    names = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            names += [f"{f.name}.{sub}" for sub in field_names(value)]
        else:
            names.append(f.name)
    return names


def override(cfg, **changes):
    """Return a copy of ``cfg`` with fields replaced.

    Keys are field names; nested fields use a double underscore or a dot
    (``train__epochs=3`` or ``**{"train.epochs": 3}``). A leaf name that is unique in the
    whole tree may be given alone (``epochs=3``). Unknown names raise :class:`ConfigError`.
    """
    for key, value in changes.items():
        path = key.replace("__", ".").split(".")
        if len(path) == 1 and path[0] not in {f.name for f in dataclasses.fields(cfg)}:
            path = _resolve_leaf(cfg, path[0])
        cfg = _replace_path(cfg, path, value, key)
    return cfg


def _resolve_leaf(cfg, name: str) -> list[str]:
    matches = [n for n in field_names(cfg) if n.split(".")[-1] == name]
    if len(matches) == 1:
        return matches[0].split(".")
    if len(matches) > 1:
        raise ConfigError(
            f"config field {name!r} is ambiguous in {type(cfg).__name__}: {', '.join(matches)}",
            "give the dotted name, for example " + repr(matches[0]),
        )
    raise ConfigError(f"unknown config field {name!r} for {type(cfg).__name__}", _suggest(cfg, name))


def _suggest(cfg, name: str) -> str:
    """Close matches among the dotted field names, compared by their last part."""
    import difflib

    by_leaf: dict[str, list[str]] = {}
    for dotted in field_names(cfg):
        by_leaf.setdefault(dotted.split(".")[-1], []).append(dotted)
    close = difflib.get_close_matches(name.split(".")[-1], list(by_leaf), n=3, cutoff=0.5)
    options = [d for leaf in close for d in by_leaf[leaf]][:6]
    hint = f"did you mean {', '.join(repr(o) for o in options)}? " if options else ""
    return hint + "srpose_lib.config.field_names(cfg) lists every field"


def _replace_path(cfg, path: list[str], value, key: str):
    names = {f.name: f for f in dataclasses.fields(cfg)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"unknown config field {key!r} for {type(cfg).__name__}",
                          did_you_mean(head, names))
    current = getattr(cfg, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config field {head!r} has no sub-field {'.'.join(path[1:])!r}")
        value = _replace_path(current, path[1:], value, key)
    elif dataclasses.is_dataclass(current) and isinstance(value, dict):
        value = override(current, **value)
    elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(cfg, **{head: value})


def from_dict(cls, data: dict):
    """Rebuild a nested dataclass from :func:`to_dict` output (unknown keys are an error)."""
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown config field {key!r} for {cls.__name__}",
                              did_you_mean(key, fields))
        ftype = fields[key].type
        sub = _dataclass_type(cls, key)
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list) and "tuple" in str(ftype):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def _dataclass_type(cls, name):
    import typing

    hints = typing.get_type_hints(cls)
    t = hints.get(name)
    return t if dataclasses.is_dataclass(t) else None
