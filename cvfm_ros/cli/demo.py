"""`cvfm-ros demo` (what `make demo` runs): generate, replay and report on the embedded default.

The default is a 60 s panorama drive through a generated city (a ROS 2 bag plus its Web Mercator
tile pyramid), created on first run under the cache folder and reused afterwards, replayed
through the same session, localizer and gating as the node, fused with odometry in an EKF.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("CVFM_ROS_CACHE", Path(__file__).resolve().parents[2] / ".cache"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="generate a drive, replay it through the localizer, write a report")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="where the generated drive lives (default: %(default)s)")
    parser.add_argument("--out", default="", help="report folder (default: <cache>/demo_report)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated drive")
    parser.add_argument("--duration", type=float, default=60.0, help="drive length in seconds")
    parser.add_argument("--rate", type=float, default=2.0, help="localization rate in Hz (the bag has 10 Hz images)")
    parser.add_argument("--matcher", default="auto", choices=["auto", "model", "baseline"],
                        help="auto: the shipped model if weights ship, else the classical baseline")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.drive import DriveSpec, generate_drive, load_drive
    from ..runtime.localizer import SHIPPED_WEIGHTS
    from .replay import REPO_CONFIG, replay_one

    started = time.perf_counter()
    cache = Path(args.cache)
    drive_dir = cache / f"demo_drive_s{args.seed}_{int(args.duration)}s"
    if (drive_dir / "drive.json").is_file():
        drive = load_drive(drive_dir)
        print(f"using the generated drive in {drive_dir}")
    else:
        print(f"generating a {args.duration:.0f} s drive (ROS 2 bag + satellite tile pyramid) in {drive_dir} ...")
        drive = generate_drive(drive_dir, DriveSpec(seed=args.seed, duration_s=args.duration))
    generated = time.perf_counter()
    matcher = args.matcher
    if matcher == "auto":
        matcher = "model" if SHIPPED_WEIGHTS.is_file() else "baseline"
        if matcher == "baseline":
            print("no trained matcher weights ship in this build: localizing with the classical baseline matcher")
    out = Path(args.out) if args.out else cache / "demo_report"
    options = {"config": str(REPO_CONFIG), "tiles": "", "datum": "", "matcher": matcher, "weights": "",
               "backend": "", "rate": args.rate, "image_topic": drive.topics["image"],
               "camera_info_topic": drive.topics["camera_info"], "odom_topic": drive.topics["odom"],
               "truth_topic": drive.topics["ground_truth"], "seed": args.seed, "seed_std": 3.0, "quiet": False}
    metrics = replay_one(str(drive_dir), str(out), options)
    total = time.perf_counter() - started
    print()
    print(f"cvfm-ros demo: {metrics['frames']} frames of a {args.duration:.0f} s drive localized at {args.rate:g} Hz "
          f"with the {matcher} matcher")
    print(f"  odometry only : median {metrics['odometry']['median_m']:6.2f} m, max {metrics['odometry']['max_m']:6.2f} m")
    print(f"  fused (EKF)   : median {metrics['fused']['median_m']:6.2f} m, p95 {metrics['fused']['p95_m']:6.2f} m")
    print(f"  raw fixes     : median {metrics['raw']['median_m']:6.2f} m, yaw {metrics['raw']['yaw_median_deg']:.2f} deg, "
          f"outliers > 5 m {100 * metrics['outlier_rate']:.0f} %")
    print(f"  availability  : {100 * metrics['availability']:.0f} % of frames with an accepted fix, "
          f"NEES {metrics['nees']:.2f} (3 = calibrated)")
    print(f"  speed         : {metrics['fps']:.2f} frames/s localization, {total:.0f} s in all "
          f"({generated - started:.0f} s generating)")
    print(f"  report        : {metrics['report']}")
    json.dumps(metrics)
    return 0
