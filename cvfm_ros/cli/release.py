"""`cvfm-ros release`: re-release trained weights with a freshly calibrated validity gate and
covariance scale (same weights; e.g. after a solver change, or for weights released before the
gate existed). `cvfm-ros train --release` does the same at the end of a training run."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("release", help="calibrate the validity gate and covariance of trained weights "
                                                   "and write a shippable copy")
    parser.add_argument("weights", help="a checkpoint or released weights file")
    parser.add_argument("--out", required=True, help="the released file to write (may be the input)")
    parser.add_argument("--calibrate", type=int, default=40, metavar="PAIRS",
                        help="validation pairs (synth-same seed 1, not a test draw) for the calibration")
    parser.add_argument("--no-gate", action="store_true", help="calibrate the covariance only")
    parser.add_argument("--calibrate-drives", type=int, default=0, metavar="N",
                        help="calibrate the covariance scale on N generated drives per camera kind the weights "
                             "serve (panorama; pinhole, 4-pinhole rig, sequential pinhole where trained on "
                             "pinholes): mean NEES of the fixes a replay accepts = 3, instead of on single "
                             "panorama pairs; 2 is a good choice (minutes per kind)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..model import read_checkpoint
    from ..model.matcher import DEFAULT_AERIAL_MPP
    from ..train.release import release_checkpoint
    from .train import calibrate

    if args.calibrate < 20:
        raise ValueError(f"--calibrate: expected at least 20 validation pairs, got {args.calibrate}")
    extra = read_checkpoint(args.weights)["extra"]
    old_runtime = dict(extra.get("runtime", {}))
    # Drive-calibrated covariance scales belong to the gate and solver they were replayed with:
    # a re-release calibrates them again (--calibrate-drives) or falls back to the pair scale.
    for key in ("camera_covariance_scales", "covariance_calibration"):
        old_runtime.pop(key, None)
    mpp = float(old_runtime.get("aerial_mpp", extra.get("train_config", {}).get("data", {}).get("aerial_mpp",
                                                                                                DEFAULT_AERIAL_MPP)))
    if args.calibrate_drives < 0:
        raise ValueError(f"--calibrate-drives: expected >= 0, got {args.calibrate_drives}")
    runtime, pose = calibrate(args.weights, args.calibrate, mpp, gate=not args.no_gate)
    if args.calibrate_drives:
        from ..eval.benchmark import gate_camera_kinds
        from ..eval.drive_calibration import calibrate_on_drives
        from .demo import DEFAULT_CACHE

        kinds = tuple(gate_camera_kinds(args.weights))
        # The drives are replayed with the new gate and the pair calibration in place.
        staged = Path(args.out).with_name(f".{Path(args.out).name}.calibrating.pt")
        try:
            release_checkpoint(args.weights, staged, {**old_runtime, **runtime}, pose=pose)
            result = calibrate_on_drives(str(staged), args.calibrate_drives, DEFAULT_CACHE, kinds)
        finally:
            staged.unlink(missing_ok=True)
        for line in result["report"]:
            print(line)
        scales = dict(result["scales"])
        if "panorama" in scales:
            runtime["covariance_scale"] = scales.pop("panorama")
        if scales:
            runtime["camera_covariance_scales"] = scales
        runtime["covariance_calibration"] = (f"{args.calibrate_drives} drives per camera kind, accepted fixes "
                                             + ", ".join(f"{k} {n}" for k, n in result["fixes"].items()))
    written = release_checkpoint(args.weights, args.out, {**old_runtime, **runtime}, pose=pose)
    print(f"released {args.out} (step {written['step']}, runtime {written['runtime']}, pose {pose})")
    return 0
