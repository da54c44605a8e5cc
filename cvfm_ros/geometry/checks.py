"""Argument checks used at public boundaries (shapes, dtypes, finiteness).

Shape specs are tuples whose entries are an int (exact size), a str (a named size that must agree
across the arguments checked with the same `sizes` dict) or `...` as the first entry (any number
of leading batch dimensions).
"""
from __future__ import annotations

from typing import Any

import torch

Spec = tuple[Any, ...]


def _fmt(spec: Spec) -> str:
    return "(" + ", ".join("..." if s is Ellipsis else str(s) for s in spec) + ")"


def check_tensor(
    name: str,
    value: Any,
    spec: Spec,
    sizes: dict[str, int] | None = None,
    floating: bool = True,
) -> torch.Tensor:
    """Raise ValueError naming `name` unless `value` is a tensor of shape `spec`.

    Named sizes are recorded in (and checked against) `sizes`, so several arguments can share a
    batch size `B` without silent broadcasting.
    """
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape {_fmt(spec)}, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    shape = tuple(value.shape)
    if spec and spec[0] is Ellipsis:
        tail = spec[1:]
        if len(shape) < len(tail):
            raise ValueError(f"{name}: expected shape {_fmt(spec)}, got {shape}")
        actual = shape[len(shape) - len(tail):] if tail else ()
        expected = tail
    else:
        if len(shape) != len(spec):
            raise ValueError(f"{name}: expected shape {_fmt(spec)}, got {shape}")
        actual, expected = shape, spec
    sizes = {} if sizes is None else sizes
    for got, want in zip(actual, expected):
        if isinstance(want, int):
            if got != want:
                raise ValueError(f"{name}: expected shape {_fmt(spec)}, got {shape}")
        elif isinstance(want, str):
            if want in sizes and sizes[want] != got:
                raise ValueError(
                    f"{name}: expected shape {_fmt(spec)} with {want}={sizes[want]}, got {shape}"
                )
            sizes[want] = got
    return value


def check_same_batch(name: str, value: torch.Tensor, batch_shape: torch.Size | tuple[int, ...], trailing: int) -> None:
    """Raise ValueError unless `value`'s leading dims (all but `trailing`) equal `batch_shape`."""
    lead = tuple(value.shape[: value.dim() - trailing])
    if lead != tuple(batch_shape):
        raise ValueError(f"{name}: expected batch shape {tuple(batch_shape)}, got {lead}")


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return value
