"""`cvfm-ros train`: train the matcher (see cvfm_ros/train/training.py)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train the ViewBridge matcher (CPU, GPU or torchrun)")
    parser.add_argument("--config", required=True, help="training YAML, e.g. config/train_synth.yaml")
    parser.add_argument("--out", default=None, help="override out_dir")
    parser.add_argument("--steps", type=int, default=None, help="override optim.steps")
    parser.add_argument("--calibrate", type=int, default=40, metavar="PAIRS",
                        help="with --release: calibrate the covariance scale on this many validation pairs "
                             "(synth-same protocol, seed 1: not a test draw); 0 skips it")
    parser.add_argument("--no-gate", action="store_true",
                        help="with --release: leave the validity gate (min_effective_inliers) as trained instead of "
                             "calibrating it on the validation pairs and as many mismatched ones")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="stop after STEP, keeping the schedule of optim.steps (equal-budget ablations)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if out_dir has last.pt")
    parser.add_argument("--release", default="", metavar="PATH",
                        help="after training, write the weights without optimizer state to PATH "
                             "(how cvfm_ros/weights/matcher.pt is made)")
    parser.set_defaults(func=run)


def calibrate(checkpoint, pairs: int, mpp: float, gate: bool) -> tuple[dict, dict]:
    """Calibrate a checkpoint for release on the validation draw and print what was found ->
    (runtime metadata, pose-solver settings); shared by `train --release` and `release`."""
    from .demo import DEFAULT_CACHE
    from ..eval.benchmark import calibrate_for_release

    runtime, pose, report = calibrate_for_release(checkpoint, pairs, mpp, DEFAULT_CACHE / "benchmarks", gate)
    for line in report:
        print(line)
    return runtime, pose


def run(args: argparse.Namespace) -> int:
    from ..train.training import load_train_config, train

    cfg = load_train_config(args.config)
    if args.out:
        cfg.out_dir = args.out
    if args.steps is not None:
        if args.steps <= 0:
            raise ValueError(f"--steps: expected a positive number, got {args.steps}")
        cfg.optim.steps = args.steps
    if args.stop_at is not None and args.stop_at <= 0:
        raise ValueError(f"--stop-at: expected a positive step, got {args.stop_at}")
    path = train(cfg, resume=not args.no_resume, stop_at=args.stop_at)
    print(f"checkpoint: {path}")
    if args.release:
        from ..train.release import release_checkpoint

        runtime, pose = {}, {}
        if args.calibrate > 0:
            runtime, pose = calibrate(path, args.calibrate, cfg.data.aerial_mpp, gate=not args.no_gate)
        extra = release_checkpoint(path, args.release, runtime, pose=pose)
        print(f"released {args.release} (step {extra['step']}, runtime {extra['runtime']})")
    return 0
