"""Releasing trained weights: a shippable copy of a training checkpoint with the camera models
its training showed and the runtime metadata the localizer reads (weights, config, provenance;
no optimizer state)."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model.checkpoint import load_matcher, read_checkpoint, save_checkpoint
from ..model.matcher import ViewBridgeMatcher


def trained_camera_models(train_config: dict[str, Any]) -> list[str]:
    """The camera models a training run showed the matcher ("panorama", "pinhole"): what the
    localizer lets the released weights serve. Synthetic runs: panoramas, plus pinholes when
    `data.pinhole_share` > 0; VIGOR folders panoramas, KITTI pinholes, CVFM folders both."""
    data = train_config.get("data", {}) if isinstance(train_config, dict) else {}
    source = str(data.get("source", "synth"))
    if source == "synth":
        return ["panorama", "pinhole"] if float(data.get("pinhole_share", 0.0)) > 0 else ["panorama"]
    try:
        from .sources import detect_source

        kind = detect_source(source)
    except ValueError:  # the folder is not here any more: say nothing narrower than both
        return ["panorama", "pinhole"]
    return {"vigor": ["panorama"], "kitti": ["pinhole"]}.get(kind, ["panorama", "pinhole"])


def release_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                       runtime: dict[str, Any] | None = None, pose: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a shippable copy of a training checkpoint: weights, config and provenance only.

    The optimizer state (twice the weights' size) is dropped; the step, the training config and
    the runtime metadata (`aerial_mpp`, from the training data, plus `runtime`, e.g. a calibrated
    `covariance_scale`) are kept, since `build_matcher` and the localizer read them. Returns the
    written `extra`. `pose`: pose-solver settings calibrated after training (e.g. the validity
    gate's `min_effective_inliers`); they change no weight.
    """
    data = read_checkpoint(src)
    model = load_matcher(src)
    if pose:
        config = replace(model.config, pose=replace(model.config.pose, **pose))
        released = ViewBridgeMatcher(config)
        released.load_state_dict(model.state_dict())
        model = released
    old = data["extra"]
    train_config = old.get("train_config", {})
    if not isinstance(train_config, dict) or not isinstance(train_config.get("data", {}), dict):
        raise ValueError(f"checkpoint {src}: extra.train_config: expected the training configuration mapping, "
                         f"got {type(train_config).__name__}")
    extra = {"step": int(old.get("step", 0)), "train_config": train_config,
             "runtime": {"aerial_mpp": float(train_config.get("data", {}).get("aerial_mpp", model.config.aerial_mpp)),
                         "camera_models": trained_camera_models(train_config), **(runtime or {})},
             "source": Path(src).name}
    save_checkpoint(dst, model, extra=extra)
    return extra
