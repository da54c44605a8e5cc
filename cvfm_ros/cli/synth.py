"""`cvfm-ros synth ...`: the synthetic data engine's commands.

- `synth drive`: a drive as a ROS 2 bag plus its satellite tile pyramid (cvfm_ros.data.drive).
"""
from __future__ import annotations

import argparse

# Sub-subcommand name -> function(subparsers) adding it; other modules may add entries.
SUBCOMMANDS: dict = {}


def _add_drive(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drive", help="generate a drive: ROS 2 bag (camera, odometry, ground truth) + XYZ tiles")
    p.add_argument("--out", required=True, help="output folder (must not hold a drive yet)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default: %(default)s)")
    p.add_argument("--camera", default="pano", metavar="pano|pinhole|rig:NAME,...",
                   help="panorama, a forward 90-degree pinhole, or a rig of such pinholes looking towards the "
                        "named directions, e.g. rig:front,left,rear,right (default: %(default)s)")
    p.add_argument("--style", default="", help="city style (default: the first seen style)")
    p.add_argument("--world-size", type=float, default=256.0, help="world side in metres")
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    p.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage instead of Image")
    p.add_argument("--datum", default="", help="'lat,lon[,alt]' of the map origin (default: Seattle)")
    p.set_defaults(func=_run_drive)


def _run_drive(args: argparse.Namespace) -> int:
    from ..data.drive import DEFAULT_DATUM, DriveSpec, generate_drive
    from ..data.synth import get_style

    if args.style:
        get_style(args.style)
    datum = DEFAULT_DATUM
    if args.datum:
        parts = [float(v) for v in args.datum.split(",")]
        if len(parts) not in (2, 3):
            raise ValueError(f"--datum: expected 'lat,lon[,alt]', got {args.datum!r}")
        datum = (parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0)
    spec = DriveSpec(seed=args.seed, duration_s=args.duration, camera=args.camera, style=args.style,
                     world_size_m=args.world_size, storage=args.storage, compressed=args.compressed, datum=datum)
    info = generate_drive(args.out, spec)
    print(f"wrote {info.frames} frames to {info.bag} and tiles to {info.tiles} (datum {info.datum})")
    return 0


SUBCOMMANDS["drive"] = _add_drive


def _add_pairs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pairs", help="write a CVFM-style dataset of pairs with pixel-level correspondences")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True, help="pairs in all (70/10/10/10 train/val/test_same/test_cross)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--styles", default="", help="comma-separated seen styles (default: all seen styles)")
    p.add_argument("--camera", default="pano", choices=["pano", "pinhole"])
    p.add_argument("--aerial-size", type=int, default=256)
    p.add_argument("--mpp", type=float, default=0.2)
    p.add_argument("--bev-size", type=float, default=40.0, help="metres spanned by the stored surface-height grid "
                   "(64 with --bev-cell 2 matches the matcher's BEV, so training supervises the Surface Model)")
    p.add_argument("--bev-cell", type=float, default=1.0, help="metres per surface-height cell")
    p.add_argument("--prior-yaw-noise", type=float, default=0.0, help="stored prior yaw error bound, degrees "
                   "(10 for training the known-orientation matcher)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run_pairs)


def _run_pairs(args: argparse.Namespace) -> int:
    from ..data.synth.dataset import write_dataset

    styles = [s.strip() for s in args.styles.split(",") if s.strip()] or None
    index = write_dataset(args.out, args.count, args.seed, styles, args.camera, aerial_size=args.aerial_size,
                          mpp=args.mpp, progress=not args.quiet, bev_size_m=args.bev_size, bev_cell_m=args.bev_cell,
                          prior_yaw_noise_deg=args.prior_yaw_noise)
    print(f"wrote {args.count} pairs; index {index}")
    return 0


SUBCOMMANDS["pairs"] = _add_pairs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="synthetic data: drives (bags + tiles) and CVFM-style pair datasets")
    sub = parser.add_subparsers(dest="synth_command", metavar="WHAT", required=True)
    for add in SUBCOMMANDS.values():
        add(sub)
