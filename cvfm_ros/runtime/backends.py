"""Inference backends behind one call signature: torch (CPU/CUDA), ONNX Runtime, TensorRT.

A backend runs a module with fixed-shape named float32 inputs and returns named numpy outputs.
`select_backend("auto", ...)` tries TensorRT, then CUDA torch (fp16 autocast where the check
passes), then ONNX Runtime on CPU, then torch on CPU; each candidate is validated on a warm-up
input against the float32 torch reference, and a failure falls back with a logged reason.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ..model.export import export_module_onnx

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    device: str

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class TorchBackend:
    """Runs the module in torch; fp16 autocast on CUDA when `half` is set."""

    def __init__(self, module: torch.nn.Module, input_names: list[str], output_names: list[str],
                 device: str = "cpu", half: bool = False) -> None:
        self.module = module.to(device).eval()
        self.input_names, self.output_names = input_names, output_names
        self.device = device
        self.half = half and device.startswith("cuda")
        self.name = f"torch-{'cuda' if device.startswith('cuda') else 'cpu'}{'-fp16' if self.half else ''}"

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.as_tensor(inputs[n]).to(self.device) for n in self.input_names]
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            out = self.module(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy()
                for n, o in zip(self.output_names, out)}


class OnnxRuntimeBackend:
    """ONNX Runtime session over an exported model; `providers` in preference order."""

    def __init__(self, onnx_path: Path, providers: list, name: str = "onnxruntime-cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.name = name
        self.device = "cuda" if any("CUDA" in str(p) or "Tensorrt" in str(p) for p in self.session.get_providers()) else "cpu"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {i.name: np.ascontiguousarray(inputs[i.name], dtype=np.float32) for i in self.session.get_inputs()}
        return dict(zip(self.output_names, self.session.run(None, feed)))


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """Digest of the package's model and geometry code. An exported graph freezes the code that
    traced it (e.g. the pose solver's rounds), so changed code must not reuse an old export."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted([*(root / "model").glob("*.py"), *(root / "geometry").glob("*.py")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(state: dict[str, torch.Tensor], extra: str) -> str:
    """A stable key for exported artifacts: the weights plus `extra`, which must name everything
    else the export depends on (shapes, camera, module config, output names, `source_digest()`)."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Selection:
    backend: Backend
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (candidate, outcome)


def _agrees(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], keys: list[str],
            tolerances: dict[str, float]) -> tuple[bool, str]:
    for key in keys:
        a, b = np.asarray(reference[key], dtype=float), np.asarray(candidate[key], dtype=float)
        if a.shape != b.shape:
            return False, f"{key}: shape {b.shape} != {a.shape}"
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        if not np.isfinite(err) or err > tolerances.get(key, 1e-3):
            return False, f"{key}: max abs difference {err:.3g} > {tolerances.get(key, 1e-3)}"
    return True, "agrees with the torch reference"


def select_backend(kind: str, device: str, module: torch.nn.Module, example: dict[str, np.ndarray],
                   input_names: list[str], output_names: list[str], cache_dir: Path, key: str,
                   check_keys: list[str], tolerances: dict[str, float]) -> Selection:
    """Pick and validate a backend. `kind`: auto|torch|onnxruntime|tensorrt; `device`: auto|cuda|cpu.

    An explicitly requested backend that fails raises ValueError with the reason; `auto` falls back.
    """
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("matcher.device: cuda requested but torch sees no CUDA device")
    reference = TorchBackend(module, input_names, output_names, "cpu")(example)
    onnx_path = Path(cache_dir) / f"matcher-{key}.onnx"

    def onnx_file() -> Path:
        if not onnx_path.is_file():
            args = tuple(torch.as_tensor(example[n]) for n in input_names)
            export_module_onnx(module.cpu(), args, input_names, output_names, onnx_path)
        return onnx_path

    candidates: list[tuple[str, Callable[[], Backend]]] = []
    if kind in ("auto", "tensorrt"):
        def trt() -> Backend:
            import onnxruntime as ort

            if "TensorrtExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("ONNX Runtime has no TensorrtExecutionProvider (TensorRT not installed)")
            engine_dir = Path(cache_dir) / "trt"
            engine_dir.mkdir(parents=True, exist_ok=True)
            providers = [("TensorrtExecutionProvider", {"trt_engine_cache_enable": True,
                                                        "trt_engine_cache_path": str(engine_dir),
                                                        "trt_fp16_enable": True}),
                         "CUDAExecutionProvider"]
            return OnnxRuntimeBackend(onnx_file(), providers, name="tensorrt")
        candidates.append(("tensorrt", trt))
    if kind in ("auto", "torch") and cuda:
        candidates.append(("torch-cuda-fp16", lambda: TorchBackend(module, input_names, output_names, "cuda", half=True)))
        candidates.append(("torch-cuda", lambda: TorchBackend(module, input_names, output_names, "cuda")))
    if kind in ("auto", "onnxruntime"):
        candidates.append(("onnxruntime-cpu", lambda: OnnxRuntimeBackend(onnx_file(), ["CPUExecutionProvider"])))
    if kind in ("auto", "torch") and device != "cuda":
        candidates.append(("torch-cpu", lambda: TorchBackend(module, input_names, output_names, "cpu")))

    attempts: list[tuple[str, str]] = []
    for name, build in candidates:
        try:
            backend = build()
            started = time.perf_counter()
            out = backend(example)
            ok, why = _agrees(reference, out, check_keys, tolerances)
            why += f" (warm-up {1e3 * (time.perf_counter() - started):.0f} ms)"
        except Exception as exc:  # a backend may fail in many library-specific ways
            ok, why = False, f"{type(exc).__name__}: {exc}"
        attempts.append((name, why))
        if ok:
            log.info("backend %s selected: %s", name, why)
            return Selection(backend, attempts)
        log.warning("backend %s not used: %s", name, why)
        if kind != "auto":
            raise ValueError(f"matcher.backend: {kind} failed: {why}")
    raise ValueError(f"matcher.backend: no usable backend among {[n for n, _ in candidates]}: {attempts}")
