"""`cvfm-ros replay BAG [BAG ...] --out DIR`: offline evaluation of the localizer on ROS 2 bags."""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "localize.yaml"


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
    parser.add_argument("--rate", type=float, default=0.0, help="process images at most this often (Hz; 0: all)")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info")
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


def replay_one(bag: str, out: str, options: dict) -> dict:
    """Replay one bag (or drive folder) into `out`; returns its metrics."""
    from tqdm import tqdm

    from ..data.drive import load_drive
    from ..eval.bag_replay import ReplayTopics, read_events, write_outputs
    from ..eval.replay import ReplayRecord, run_replay
    from ..runtime.geodesy import Datum
    from ..runtime.localizer import Localizer
    from ..runtime.session import LocalizationSession
    from ..runtime.settings import load_node_settings

    settings = load_node_settings(options["config"])
    bag_path = Path(bag)
    if not bag_path.exists():
        raise ValueError(f"BAG: {bag_path} does not exist")
    if (bag_path / "drive.json").is_file():  # a generated drive: its bag, tiles and datum
        drive = load_drive(bag_path)
        bag_path = drive.bag
        settings.tiles.path = str(drive.tiles)
        settings.datum.latitude, settings.datum.longitude, settings.datum.altitude = drive.datum
        settings.camera.height_m = drive.camera_height_m
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
    settings.tiles.max_zoom = max(settings.tiles.max_zoom, 20)
    settings.validate()
    datum = Datum(settings.datum.latitude, settings.datum.longitude, settings.datum.altitude)
    topics = ReplayTopics(options["image_topic"], options["camera_info_topic"], options["odom_topic"],
                          options["truth_topic"])
    record = ReplayRecord()
    events, truth = read_events(bag_path, topics, settings, datum, record.problems)
    localizer = Localizer(settings.localizer_config())
    session = LocalizationSession(localizer, settings.prior)
    stamps = [e.stamp for e in events if e.kind == "image"]
    if options["rate"] > 0:  # the frames run_replay will process at that rate
        kept, last_kept = 0, -float("inf")
        for t in stamps:
            if t - last_kept >= 1.0 / options["rate"] - 1e-6:
                kept, last_kept = kept + 1, t
    else:
        kept = len(stamps)
    bar = tqdm(total=kept, disable=options.get("quiet", False), desc=f"replay {Path(bag).name}", unit="img")
    last = [None]

    def progress(stamp: float) -> None:
        bar.update(1)
        last[0] = stamp

    result = run_replay(events, session, truth, seed_std_xy_m=options["seed_std"], rate_hz=options["rate"],
                        seed=options["seed"], progress=progress)
    bar.close()
    result.problems.update(record.problems)
    metrics = write_outputs(Path(out), result, localizer, f"cvfm_ros replay: {Path(bag).name}")
    metrics["report"] = str(Path(out) / "report.html")
    if options.get("out_bag"):
        import shutil

        from ..eval.bag_replay import write_output_bag

        bag_out, fresh = Path(out) / "localization", Path(out) / ".localization.new"
        shutil.rmtree(fresh, ignore_errors=True)
        counts = write_output_bag(fresh, result)
        # the previous bag of this folder goes only once the new one is complete
        shutil.rmtree(bag_out, ignore_errors=True)
        fresh.rename(bag_out)
        metrics["bag"] = {"path": str(bag_out), "messages": counts}
    return metrics


def run(args: argparse.Namespace) -> int:
    if args.rate < 0:
        raise ValueError(f"--rate: expected >= 0 Hz, got {args.rate}")
    if args.jobs < 1:
        raise ValueError(f"--jobs: expected >= 1, got {args.jobs}")
    options = {k: v for k, v in vars(args).items() if k not in ("func", "bags", "out")}
    out = Path(args.out)
    targets = [(b, str(out if len(args.bags) == 1 else out / Path(b).name)) for b in args.bags]
    if args.jobs == 1 or len(targets) == 1:
        results = [replay_one(b, o, options) for b, o in targets]
    else:
        options["quiet"] = True
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(replay_one, *zip(*targets), [options] * len(targets)))
    for (bag, _), m in zip(targets, results):
        print(f"{bag}: fused median {m['fused']['median_m']:.2f} m (odometry {m['odometry']['median_m']:.2f} m), "
              f"availability {100 * m['availability']:.0f} %, NEES {m['nees']:.2f} -> {m['report']}")
    if len(targets) > 1:
        from ..config import atomic_write_text
        atomic_write_text(out / "summary.json", json.dumps(dict(zip([b for b, _ in targets], results)), indent=2))
    return 0
