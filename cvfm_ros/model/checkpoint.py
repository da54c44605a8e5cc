"""Matcher checkpoints: plain state dict + config dict, written atomically, read weights-only.

Format (a dict saved with `torch.save`): `format` = FORMAT, `version`, `architecture` =
"ViewBridgeMatcher", `config` (the MatcherConfig as plain data), `state_dict` (CPU tensors) and
`extra` (plain data: numbers, strings, lists, dicts, tensors; e.g. the training step or the
optimizer state). Nothing in it needs unpickling of arbitrary classes, so it loads with
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from cvfm_ros.config import atomic_write_bytes, from_dict, to_dict
from cvfm_ros.geometry import MountedCamera
from .matcher import MatcherConfig, ViewBridgeMatcher
from .pretrained import packaged_state_keys

FORMAT = "cvfm_ros.matcher_checkpoint"
VERSION = 1
ARCHITECTURE = "ViewBridgeMatcher"


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: keys must be strings or integers, got {type(k).__name__}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not plain data (a weights-only load would reject it)")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def _strip_extractor_weights(config: MatcherConfig) -> dict[str, Any]:
    # A checkpoint holds the full state dict: the extractor's own weights file (used to build the
    # model before training) must not be read again when the checkpoint is loaded elsewhere.
    data = to_dict(config)
    data["ground_extractor"]["weights"] = None
    data["aerial_extractor"]["weights"] = None
    return data


def save_checkpoint(path: str | os.PathLike, model: ViewBridgeMatcher, config: MatcherConfig | None = None,
                    extra: dict[str, Any] | None = None) -> None:
    """Write `model`'s weights, its `config` (default: model.config) and `extra` atomically."""
    if not isinstance(model, ViewBridgeMatcher):
        raise ValueError(f"model: expected a ViewBridgeMatcher, got {type(model).__name__}")
    config = model.config if config is None else config
    if _strip_extractor_weights(config) != _strip_extractor_weights(model.config):
        raise ValueError("config: differs from the model's own config; the weights would not fit it")
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise ValueError(f"extra: expected a dict, got {type(extra).__name__}")
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": ARCHITECTURE,
        "config": _strip_extractor_weights(config),
        "state_dict": checkpoint_state(model),
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def checkpoint_state(model: ViewBridgeMatcher) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint stores: everything but frozen packaged backbones, whose weights
    are read from their installed package when the matcher is built (model/pretrained.py)."""
    skip = packaged_state_keys(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in skip}


def load_weights(model: ViewBridgeMatcher, state: dict[str, torch.Tensor], where: str) -> None:
    """Load a checkpoint's state dict into `model`: every key must fit, and only the frozen
    packaged backbones' keys may be absent. ValueError naming `where` and the first misfit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - packaged_state_keys(model))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    problems = ([f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
                + [f"{k}: shape {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in misshaped[:3]])
    if problems:
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} of another shape"
        raise ValueError(f"{where}: weights do not fit the {ARCHITECTURE} built from its config ({counts}: "
                         + "; ".join(problems) + ")")
    model.load_state_dict(state, strict=False)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint file (weights-only) -> its payload dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path}: not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises several types for bad files)
        text = str(exc)
        if "WeightsUnpickler error:" in text:
            # torch's message goes on to suggest weights_only=False: never here (it runs code
            # from the file). Keep only what the file holds that a weights-only load refuses.
            what = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(". ")[0]
            raise ValueError(f"checkpoint {path}: refused, it holds Python objects, not only tensors and plain "
                             f"data ({what}); cvfm_ros loads weights-only files and never runs code from one: "
                             "save the state dict and plain values instead") from exc
        raise ValueError(f"checkpoint {path}: not a readable torch file ({type(exc).__name__}: "
                         f"{text.splitlines()[0] if text else ''})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: not a cvfm_ros matcher checkpoint (format {FORMAT!r} expected)")
    if data.get("version") != VERSION:
        raise ValueError(f"checkpoint {path}: version {data.get('version')!r}, this code reads version {VERSION}")
    if data.get("architecture") != ARCHITECTURE:
        raise ValueError(f"checkpoint {path}: architecture {data.get('architecture')!r}, expected {ARCHITECTURE!r}")
    for key, kind in (("config", dict), ("state_dict", dict), ("extra", dict)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"checkpoint {path}: missing or malformed {key!r}")
    return data


def load_matcher(path: str | os.PathLike, config: MatcherConfig | None = None,
                 camera: MountedCamera | None = None) -> ViewBridgeMatcher:
    """Build a ViewBridgeMatcher from a checkpoint (in eval mode).

    If `config` is given, the checkpoint's config must equal it (apart from extractor weight
    paths); a checkpoint of another architecture or config raises ValueError naming the file
    and the differing keys.
    """
    data = read_checkpoint(path)
    stored = from_dict(MatcherConfig, data["config"], where=f"checkpoint {path}: config")
    if config is not None:
        want, got = _flatten(_strip_extractor_weights(config)), _flatten(_strip_extractor_weights(stored))
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        if diff:
            shown = ", ".join(f"{k}: checkpoint {got.get(k)!r} vs expected {want.get(k)!r}" for k in diff[:6])
            raise ValueError(f"checkpoint {path}: config differs from the expected one ({shown})")
    model = ViewBridgeMatcher(stored, camera)
    load_weights(model, data["state_dict"], f"checkpoint {path}")
    return model.eval()
