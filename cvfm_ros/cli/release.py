"""`cvfm-ros release`: re-release trained weights with a freshly calibrated validity gate and
covariance scale (same weights; e.g. after a solver change, or for weights released before the
gate existed). `cvfm-ros train --release` does the same at the end of a training run."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("release", help="calibrate the validity gate and covariance of trained weights "
                                                   "and write a shippable copy")
    parser.add_argument("weights", help="a checkpoint or released weights file")
    parser.add_argument("--out", required=True, help="the released file to write (may be the input)")
    parser.add_argument("--calibrate", type=int, default=40, metavar="PAIRS",
                        help="validation pairs (synth-same seed 1, not a test draw) for the calibration")
    parser.add_argument("--no-gate", action="store_true", help="calibrate the covariance only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..model import read_checkpoint
    from ..train.release import release_checkpoint
    from .train import calibrate

    if args.calibrate < 20:
        raise ValueError(f"--calibrate: expected at least 20 validation pairs, got {args.calibrate}")
    extra = read_checkpoint(args.weights)["extra"]
    old_runtime = dict(extra.get("runtime", {}))
    mpp = float(old_runtime.get("aerial_mpp", extra.get("train_config", {}).get("data", {}).get("aerial_mpp", 0.4)))
    runtime, pose = calibrate(args.weights, args.calibrate, mpp, gate=not args.no_gate)
    written = release_checkpoint(args.weights, args.out, {**old_runtime, **runtime}, pose=pose)
    print(f"released {args.out} (step {written['step']}, runtime {written['runtime']}, pose {pose})")
    return 0
