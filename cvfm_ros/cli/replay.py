"""`cvfm-ros replay BAG [BAG ...] --out DIR`: offline evaluation of the localizer on ROS 2 bags."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "localize.yaml"
REPLAY_TOPIC_DEFAULTS = {"image_topic": "/camera/image_raw", "camera_info_topic": "/camera/camera_info"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("replay", help="replay ROS 2 bags through the localizer and write a report")
    parser.add_argument("bags", nargs="+", help="bag folders or files (a `cvfm-ros synth drive` folder also works)")
    parser.add_argument("--config", default=str(REPO_CONFIG), help="node parameters YAML (default: %(default)s)")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per bag when several)")
    parser.add_argument("--tiles", default="", help="tile source (overrides tiles.path)")
    parser.add_argument("--datum", default="", help="'lat,lon[,alt]' (overrides datum.*)")
    parser.add_argument("--matcher", default="", choices=["", "model", "baseline"], help="override matcher.kind")
    parser.add_argument("--weights", default="", help="override matcher.weights")
    parser.add_argument("--backend", default="", choices=["", "auto", "torch", "onnxruntime", "tensorrt"])
    parser.add_argument("--sequential", type=int, default=None, metavar="K",
                        help="sequential BEV over the last K frames (overrides matcher.sequential_frames; 0: off)")
    parser.add_argument("--rate", type=float, default=0.0, help="process images at most this often (Hz; 0: all)")
    parser.add_argument("--image-topic", default=REPLAY_TOPIC_DEFAULTS["image_topic"],
                        help="image topic; with camera.rig a template such as /cameras/{name}/image_raw")
    parser.add_argument("--camera-info-topic", default=REPLAY_TOPIC_DEFAULTS["camera_info_topic"],
                        help="camera_info topic; with camera.rig a template such as /cameras/{name}/camera_info")
    parser.add_argument("--odom-topic", default="/odom")
    parser.add_argument("--truth-topic", default="/ground_truth/odom",
                        help="ground truth: nav_msgs/Odometry, geometry_msgs/PoseStamped or sensor_msgs/NavSatFix")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial-fix perturbation")
    parser.add_argument("--seed-std", type=float, default=3.0, help="1-sigma of the initial fix, metres")
    parser.add_argument("--jobs", type=int, default=1, help="bags evaluated in parallel processes")
    parser.add_argument("--out-bag", action="store_true",
                        help="also write OUT/localization (mcap): ~/pose fixes, fused odometry, match reports")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


# What a replay folder holds: an existing --out folder is replaced only if it has nothing else.
_REPLAY_FILES = {"estimates.tum", "fused.tum", "odometry.tum", "ground_truth.tum", "metrics.json", "frames.csv", "report.html",
                 "localization", "summary.json"}


def _check_out(out: Path) -> None:
    """Fail before any work when `out` cannot become a replay folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a folder")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if p.name not in _REPLAY_FILES and not p.name.endswith(".png")
                   and not (p.is_dir() and (p / "metrics.json").is_file())]
        if foreign:
            raise ValueError(f"--out: {out} holds files that are not a replay's ({', '.join(sorted(foreign)[:5])}); "
                             "choose a new or an earlier replay folder")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out: cannot write in {parent} (permission denied)")


def _publish_folder(staging: Path, out: Path) -> None:
    """Put a completed replay folder in place of `out` (renames: a killed run leaves the old
    folder or the new one, never a mixture of both)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def replay_one(bag: str, out: str, options: dict) -> dict:
    """Replay one bag (or drive folder) into `out`; returns its metrics."""
    from tqdm import tqdm

    from ..data.drive import load_drive
    from ..eval.bag_replay import ReplayTopics, read_events, write_output_bag, write_outputs
    from ..eval.replay import ReplayRecord, run_replay
    from ..maps.geodesy import Datum
    from ..runtime.localizer import Localizer
    from ..runtime.session import LocalizationSession
    from ..runtime.settings import load_node_settings

    settings = load_node_settings(options["config"])
    bag_path = Path(bag)
    if not bag_path.exists():
        raise ValueError(f"BAG: {bag_path} does not exist")
    datum_given = bool(options.get("datum"))
    if (bag_path / "drive.json").is_file():  # a generated drive: its bag, tiles and datum
        drive = load_drive(bag_path)
        bag_path = drive.bag
        settings.tiles.path = str(drive.tiles)
        settings.datum.latitude, settings.datum.longitude, settings.datum.altitude = drive.datum
        settings.camera.height_m = drive.camera_height_m
        settings.camera.model = "panorama" if drive.spec.camera == "pano" else "pinhole"
        if drive.spec.rig_names():  # a rig drive: its cameras and their topic templates
            settings.camera.rig = ",".join(drive.spec.rig_names())
            for key, option in (("image", "image_topic"), ("camera_info", "camera_info_topic")):
                if options[option] == REPLAY_TOPIC_DEFAULTS[option]:
                    options = {**options, option: drive.topics[key]}
        datum_given = True
    if options.get("tiles"):
        settings.tiles.path = options["tiles"]
    if options.get("datum"):
        parts = [float(p) for p in options["datum"].split(",")]
        if len(parts) not in (2, 3):
            raise ValueError(f"--datum: expected 'lat,lon[,alt]', got {options['datum']!r}")
        settings.datum.latitude, settings.datum.longitude = parts[0], parts[1]
        settings.datum.altitude = parts[2] if len(parts) == 3 else 0.0
    for key, attr in (("matcher", "kind"), ("weights", "weights"), ("backend", "backend")):
        if options.get(key):
            setattr(settings.matcher, attr, options[key])
    if options.get("sequential") is not None:
        settings.matcher.sequential_frames = options["sequential"]
    settings.tiles.max_zoom = max(settings.tiles.max_zoom, 20)
    settings.validate()
    datum = Datum(settings.datum.latitude, settings.datum.longitude, settings.datum.altitude)
    topics = ReplayTopics(options["image_topic"], options["camera_info_topic"], options["odom_topic"],
                          options["truth_topic"])
    problems = ReplayRecord().problems
    if not datum_given and options["config"] == str(REPO_CONFIG):
        # The shipped parameters' datum is an example (Seattle): say so rather than run silently there.
        problems["no --datum and the default parameters: the map datum is the example in config/localize.yaml"] += 1
    segments = read_events(bag_path, topics, settings, datum, problems)
    localizer = Localizer(settings.localizer_config())
    stamps = [e.stamp for seg in segments for e in seg.events if e.kind == "image"]
    bar = tqdm(total=_frames_at_rate(stamps, options["rate"]), disable=options.get("quiet", False),
               desc=f"replay {Path(bag).name}", unit="img")
    result = ReplayRecord(problems=problems)
    for segment in segments:  # each clock segment is its own run: a fresh session, seeded anew
        part = run_replay(segment.events, LocalizationSession(localizer, settings.prior), segment.truth,
                          seed_std_xy_m=options["seed_std"], rate_hz=options["rate"], seed=options["seed"],
                          progress=lambda stamp: bar.update(1))
        result.frames += part.frames
        result.problems.update(part.problems)
        result.examples += part.examples[:max(0, 4 - len(result.examples))]
        result.wall_s += part.wall_s
    bar.close()
    out_path = Path(out)
    staging = out_path.parent / f".{out_path.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        metrics = write_outputs(staging, result, localizer, f"cvfm_ros replay: {Path(bag).name}")
        if options.get("out_bag"):
            metrics["bag"] = {"path": str(out_path / "localization"),
                              "messages": write_output_bag(staging / "localization", result)}
        _publish_folder(staging, out_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    metrics["report"] = str(out_path / "report.html")
    return metrics


def _frames_at_rate(stamps: list[float], rate_hz: float) -> int:
    """How many of the image `stamps` run_replay processes at `rate_hz` (0: all)."""
    if rate_hz <= 0:
        return len(stamps)
    kept, last_kept = 0, -float("inf")
    for t in stamps:
        if t - last_kept >= 1.0 / rate_hz - 1e-6:
            kept, last_kept = kept + 1, t
    return kept


def _replay_or_error(bag: str, out: str, options: dict) -> dict:
    """replay_one, with a bad bag turned into an error entry (the batch goes on)."""
    try:
        return replay_one(bag, out, options)
    except (ValueError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)}


def run(args: argparse.Namespace) -> int:
    if args.rate < 0:
        raise ValueError(f"--rate: expected >= 0 Hz, got {args.rate}")
    if args.jobs < 1:
        raise ValueError(f"--jobs: expected >= 1, got {args.jobs}")
    options = {k: v for k, v in vars(args).items() if k not in ("func", "bags", "out")}
    from ..runtime.settings import load_node_settings

    load_node_settings(args.config)  # a bad --config fails before any bag is read
    out = Path(args.out)
    targets = [(b, out if len(args.bags) == 1 else out / Path(b).name) for b in args.bags]
    if len({o for _, o in targets}) != len(targets):
        raise ValueError("BAG: two bags share a name, so their --out sub-folders would collide")
    _check_out(out)
    for _, target in targets:
        _check_out(target)
    targets = [(b, str(o)) for b, o in targets]
    if len(targets) == 1:  # one bag: its error is the command's error (exit 2, the message)
        results = [replay_one(*targets[0], options)]
    elif args.jobs == 1:
        results = [_replay_or_error(b, o, options) for b, o in targets]
    else:
        options["quiet"] = True
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_replay_or_error, *zip(*targets), [options] * len(targets)))
    failed = 0
    for (bag, _), m in zip(targets, results):
        if "error" in m:
            failed += 1
            print(f"{bag}: FAILED: {m['error']}", file=sys.stderr)
        elif not m["frames_with_truth"] or not math.isfinite(m["fused"]["median_m"]):
            failed += 1
            print(f"{bag}: nothing evaluated ({m['frames']} frames, {m['frames_with_truth']} with ground truth; "
                  f"see {m['report']})", file=sys.stderr)
        else:
            print(f"{bag}: fused median {m['fused']['median_m']:.2f} m (odometry {m['odometry']['median_m']:.2f} m), "
                  f"availability {100 * m['availability']:.0f} %, NEES {m['nees']:.2f} -> {m['report']}")
    if len(targets) > 1:
        from ..config import atomic_write_text
        atomic_write_text(out / "summary.json", json.dumps(dict(zip([b for b, _ in targets], results)), indent=2))
    if failed:
        print(f"{failed} of {len(targets)} bag(s) failed or evaluated nothing", file=sys.stderr)
    return 1 if failed else 0
