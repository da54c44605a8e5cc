"""The one export contract of the matcher (ONNX at fixed input shapes), and running the exported file
with ONNX Runtime. `cvfm-ros export` writes it, the runtime's ONNX Runtime and TensorRT backends run
it, docs/MODEL.md documents it.

The exported graph takes EXPORT_INPUTS: `ground` (B, 3, Hg, Wg) (for a camera rig of R cameras (B,
R, 3, Hg, Wg)), `aerial` (B, 3, Ha, Wa) and `prior_yaw` (B,) (float32), and returns EXPORT_OUTPUTS
in that order (float32). The camera (rig) and the aerial resolution (`aerial_mpp`, from the released
weights) are baked in as constants (export once per robot camera or rig). Uses the TorchScript-based
exporter (opset 17), which needs no extra package. The graph holds standard ONNX operators only (the
Procrustes inverts its 3x3 information matrix in closed form), so it also runs under TensorRT.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvfm_ros.config import temporary_sibling
from cvfm_ros.geometry import CameraRig
from .matcher import ViewBridgeMatcher
from .sequential import MEMORY_KEYS

EXPORT_INPUTS = ("ground", "aerial", "prior_yaw")
EXPORT_OUTPUTS = ("pose", "covariance", "valid", "matches_bev_xy", "matches_aerial_uv", "matches_ground_uv",
                  "matches_ground_camera", "match_weights", "effective_inliers")
# Sequential BEV (model/sequential.py): with `memory_frames` T > 0 the graph also takes the BEVs of
# T past frames (MEMORY_INPUTS, "memory_" + the bev_memory key) and returns this frame's BEV
# and the yaw it was lifted at (FRAME_OUTPUTS) for the next frames' memory.
MEMORY_INPUTS = tuple(f"memory_{k}" for k in MEMORY_KEYS)
FRAME_OUTPUTS = ("frame_bev_features", "frame_bev_valid", "frame_surface_height", "bev_yaw")
OPSET = 17


def contract(memory_frames: int = 0) -> tuple[list[str], list[str]]:
    """(input names, output names) of the export contract with `memory_frames` past BEVs."""
    if memory_frames > 0:
        return [*EXPORT_INPUTS, *MEMORY_INPUTS], [*EXPORT_OUTPUTS, *FRAME_OUTPUTS]
    return list(EXPORT_INPUTS), list(EXPORT_OUTPUTS)


def memory_shapes(matcher: nn.Module, memory_frames: int, batch_size: int = 1) -> dict[str, tuple[int, ...]]:
    """Fixed shapes of MEMORY_INPUTS for `matcher` with `memory_frames` past BEVs."""
    hb = wb = matcher.config.lifting.bev_cells
    b, t = batch_size, memory_frames
    return {"memory_features": (b, t, matcher.bev_input_channels, hb, wb), "memory_valid": (b, t, hb, wb),
            "memory_surface_height": (b, t, hb, wb), "memory_relative_pose": (b, t, 3), "memory_bev_yaw": (b, t),
            "memory_pose_std": (b, t, 2)}


class ExportableMatcher(nn.Module):
    """The contract as a module: positional EXPORT_INPUTS (+ MEMORY_INPUTS with `memory_frames`)
    in, EXPORT_OUTPUTS (+ FRAME_OUTPUTS) out, `aerial_mpp` fixed. What is traced to ONNX and what
    the torch backend runs, so all backends agree."""

    def __init__(self, matcher: nn.Module, aerial_mpp: float, camera=None, memory_frames: int = 0) -> None:
        super().__init__()
        self.matcher = matcher
        self.aerial_mpp = float(aerial_mpp)
        self.memory_frames = int(memory_frames)
        self.output_names = contract(self.memory_frames)[1]
        # This wrapper's own ground camera (an immutable MountedCamera), passed with every call:
        # wrappers for several cameras share one matcher without setting its camera in turn.
        self.camera = camera if camera is not None else matcher.camera
        if self.camera is None:
            raise ValueError("camera: the matcher has none set and none was given (it is baked into the graph)")

    def forward(self, ground: torch.Tensor, aerial: torch.Tensor, prior_yaw: torch.Tensor,
                *memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = {"ground": ground, "aerial": aerial, "aerial_mpp": self.aerial_mpp, "prior_yaw": prior_yaw,
                 "camera": self.camera}
        if self.memory_frames > 0:
            if len(memory) != len(MEMORY_KEYS):
                raise ValueError(f"memory: expected the {len(MEMORY_KEYS)} inputs {', '.join(MEMORY_INPUTS)}")
            batch["bev_memory"] = dict(zip(MEMORY_KEYS, memory))
        out = self.matcher(batch)
        return tuple(out[k].to(torch.float32) for k in self.output_names)


def export_module_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
                       output_names: list[str], path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Export `module(*args)` at the args' fixed shapes to `path`, atomically (temporary file,
    then rename; an interrupted export leaves no file). The module is traced in eval mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_sibling(path)
    os.close(fd)
    modes = {m: m.training for m in module.modules()}  # a fresh wrapper is in training mode, its contents may not be
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter about the legacy exporter
            # The TorchScript exporter needs no extra packages (the dynamo exporter needs onnxscript).
            torch.onnx.export(module, args, tmp, input_names=list(input_names), output_names=list(output_names),
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        for m, training in modes.items():
            m.training = training
    return path


def export_onnx(matcher: ViewBridgeMatcher, path: str | os.PathLike, aerial_mpp: float,
                batch_size: int = 1, camera=None, memory_frames: int = 0) -> Path:
    """Export `matcher` to an ONNX file at `path` under the contract, atomically; returns the
    path. Input shapes are fixed: batch `batch_size`, images of the matcher config's sizes,
    `memory_frames` past BEVs (0: none); `aerial_mpp` and the ground `camera` (default: the
    matcher's) are baked in.
    """
    if camera is None and matcher.camera is None:
        raise ValueError("camera: give one or set the matcher's (it is baked into the graph)")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    hg, wg = matcher.config.ground_hw
    ha, wa = matcher.config.aerial_hw
    rig = camera if camera is not None else matcher.camera
    cameras = (len(rig),) if isinstance(rig, CameraRig) else ()
    args = (torch.rand(batch_size, *cameras, 3, hg, wg), torch.rand(batch_size, 3, ha, wa), torch.zeros(batch_size))
    if memory_frames > 0:
        args += tuple(torch.zeros(shape) for shape in memory_shapes(matcher, memory_frames, batch_size).values())
    inputs, outputs = contract(memory_frames)
    return export_module_onnx(ExportableMatcher(matcher, aerial_mpp, camera, memory_frames), args, inputs, outputs, path)


class OnnxMatcher:
    """Runs an exported matcher with ONNX Runtime; `__call__(batch)` mirrors the torch forward for
    EXPORT_OUTPUTS (numpy in, numpy out; keys of `batch` beyond EXPORT_INPUTS are ignored)."""

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"onnx file {path}: not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: tuple(i.shape) for i in self.session.get_inputs()}

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        feeds = {}
        for name, shape in self.inputs.items():
            if name not in batch:
                raise ValueError(f"batch: missing key {name!r}")
            value = batch[name]
            value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            value = np.broadcast_to(value.astype(np.float32), shape) if value.ndim == 0 else value.astype(np.float32)
            if tuple(value.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape} (fixed at export), got {tuple(value.shape)}")
            feeds[name] = np.ascontiguousarray(value)
        names = [o.name for o in self.session.get_outputs()]  # EXPORT_OUTPUTS (+ FRAME_OUTPUTS)
        return dict(zip(names, self.session.run(names, feeds)))
