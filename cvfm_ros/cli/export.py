"""`cvfm-ros export`: the matcher as ONNX at fixed input shapes (and a TensorRT engine where
TensorRT is available through ONNX Runtime's TensorRT execution provider)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export the matcher to ONNX (and TensorRT where installed)")
    parser.add_argument("--weights", default="", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--camera-height", type=float, default=1.8, help="panorama height above ground, metres")
    parser.add_argument("--out", required=True, help="output .onnx path")
    parser.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine cache next to it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort

    from ..geometry import MountedCamera
    from ..model.export import EXPORT_INPUTS, EXPORT_OUTPUTS, ExportableMatcher, export_onnx
    from ..runtime.backends import OnnxRuntimeBackend, TorchBackend
    from ..runtime.localizer import build_matcher
    from ..runtime.settings import MatcherSettings

    matcher = build_matcher(MatcherSettings(kind="model", weights=args.weights))
    hg, wg = matcher.config.ground_hw
    ha, wa = matcher.config.aerial_hw
    camera = MountedCamera.panorama(wg, hg, args.camera_height)
    mpp = float(matcher.runtime_metadata.get("aerial_mpp", matcher.config.aerial_mpp))
    rng = np.random.default_rng(0)
    example = {"ground": rng.random((1, 3, hg, wg), dtype=np.float32), "aerial": rng.random((1, 3, ha, wa), dtype=np.float32),
               "prior_yaw": np.zeros(1, np.float32)}
    out = export_onnx(matcher, Path(args.out), mpp, camera=camera)
    ref = TorchBackend(ExportableMatcher(matcher, mpp, camera).eval(), list(EXPORT_INPUTS), list(EXPORT_OUTPUTS))(example)
    got = OnnxRuntimeBackend(out, ["CPUExecutionProvider"])(example)
    diff = float(np.abs(ref["pose"] - got["pose"]).max())
    print(f"wrote {out} (inputs ground 1x3x{hg}x{wg}, aerial 1x3x{ha}x{wa}, prior_yaw 1; aerial {mpp} m/px); "
          f"ONNX Runtime vs torch pose max difference {diff:.2e}")
    if args.tensorrt:
        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise ValueError("--tensorrt: ONNX Runtime has no TensorrtExecutionProvider here (install TensorRT and "
                             "onnxruntime-gpu on the GPU machine)")
        engine_dir = out.parent / "trt"
        engine_dir.mkdir(exist_ok=True)
        OnnxRuntimeBackend(out, [("TensorrtExecutionProvider", {"trt_engine_cache_enable": True,
                                                                "trt_engine_cache_path": str(engine_dir),
                                                                "trt_fp16_enable": True})], name="tensorrt")(example)
        print(f"TensorRT engine cached in {engine_dir}")
    return 0
