"""Declare a settings dataclass as ROS 2 parameters (one place, with descriptors) and read it back.

Nested dataclasses become dotted parameter names (`tiles.path`, `prior.buffer_s`), which is how
ROS 2 YAML nests them under `ros__parameters`. Descriptors carry the field's `help`, its numeric
`range` and `read_only` from `dataclasses.field(metadata=...)`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node

from ..config import from_dict, to_dict

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any, Any, dict]]:
    """(dotted name, type, default, metadata) of every scalar field, recursing into dataclasses."""
    hints = typing.get_type_hints(cls)
    out = []
    default_obj = cls()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = getattr(default_obj, f.name)
        if dataclasses.is_dataclass(hint):
            out += _leaves(hint, f"{prefix}{f.name}.")
            continue
        meta = dict(f.metadata)
        if typing.get_origin(hint) is typing.Literal:
            meta.setdefault("choices", tuple(typing.get_args(hint)))
            hint = type(typing.get_args(hint)[0])
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            # Optional[int] / Optional[float]: ROS parameters have no null, so -1 stands for None.
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0]
            meta["none_sentinel"] = -1
            value = -1 if value is None else value
        out.append((prefix + f.name, hint, value, meta))
    return out


def declare_settings(node: Node, cls: type) -> list[str]:
    """Declare every field of dataclass `cls` as a parameter with a descriptor; returns the names."""
    names = []
    for name, hint, default, meta in _leaves(cls):
        if hint not in _TYPES:
            raise TypeError(f"parameter {name}: unsupported type {hint}")
        help_text = meta.get("help", "") + (" (-1: automatic)" if "none_sentinel" in meta else "")
        descriptor = ParameterDescriptor(name=name, type=_TYPES[hint], description=help_text,
                                         read_only=bool(meta.get("read_only", False)))
        if "choices" in meta:
            descriptor.additional_constraints = "one of: " + ", ".join(meta["choices"])
        if "range" in meta:
            lo, hi = meta["range"]
            if "none_sentinel" in meta:
                lo = min(lo, meta["none_sentinel"])
            if hint is float:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi))]
            elif hint is int:
                descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        node.declare_parameter(name, default, descriptor)
        names.append(name)
    return names


def _from_ros(name: str, hint: Any, meta: dict, value: Any) -> Any:
    """A parameter value as the settings field holds it; errors name the parameter."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if "none_sentinel" in meta and value == meta["none_sentinel"]:
        value = None
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"parameter {name}: expected one of {list(meta['choices'])}, got {value!r}")
    return value


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in values.items():
        level = nested
        parts = name.split(".")
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = value
    return nested


def read_settings(node: Node, cls: type):
    """Read the declared parameters back into `cls`; errors name the parameter."""
    values = {name: _from_ros(name, hint, meta, node.get_parameter(name).value) for name, hint, _, meta in _leaves(cls)}
    return from_dict(cls, _nest(values), where="parameter")


def apply_parameter_changes(settings: Any, changes: dict[str, Any]) -> list[str]:
    """Apply changed parameter values (dotted names) to a live settings tree, all or nothing.

    The changed tree is built and checked first (field checks, `validate()` where the class has
    one); only then are the leaves set in place, so every holder of a settings sub-object (the
    prior tracker, the localizer's gate) sees the new values. Returns the names applied; raises
    ValueError naming the parameter when a value is refused (nothing is changed then).
    """
    leaves = {name: (hint, meta) for name, hint, _, meta in _leaves(type(settings))}
    unknown = sorted(set(changes) - set(leaves))
    if unknown:
        raise ValueError(f"parameter {unknown[0]}: not a parameter of this node")
    values = to_dict(settings)
    flat = {name: _from_ros(name, *leaves[name], value) for name, value in changes.items()}
    for name, value in flat.items():
        level = values
        parts = name.split(".")
        for part in parts[:-1]:
            level = level[part]
        level[parts[-1]] = value
    updated = from_dict(type(settings), values, where="parameter")
    if hasattr(updated, "validate"):
        updated.validate()
    for name in flat:
        *path, leaf = name.split(".")
        live, new = settings, updated
        for part in path:
            live, new = getattr(live, part), getattr(new, part)
        setattr(live, leaf, getattr(new, leaf))
    return list(flat)
