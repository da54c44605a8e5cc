"""`cvfm-ros bench`: per-stage and end-to-end latency and peak memory, backends side by side.

Each backend runs in its own child process (so its peak RSS is its own) on the same frames of a
generated drive, with warm-up frames excluded from the statistics.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure localizer latency and memory per backend")
    parser.add_argument("--backends", default="torch,onnxruntime",
                        help="comma-separated: torch, onnxruntime, tensorrt (default: %(default)s)")
    parser.add_argument("--matcher", default="model", choices=["model", "baseline"],
                        help="model: the shipped ViewBridge weights (or --weights); baseline: classical NCC "
                             "(default: %(default)s)")
    parser.add_argument("--weights", default="", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--frames", type=int, default=60, help="measured frames (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: all cores)")
    parser.add_argument("--camera", default="pano", choices=["pano", "pinhole", "rig"],
                        help="pano, a forward pinhole, or rig: four pinholes (front, left, rear, right) per frame")
    parser.add_argument("--sequential", type=int, default=0, metavar="K",
                        help="sequential BEV over the last K frames (matcher.sequential_frames; 0: off)")
    parser.add_argument("--json", required=True, help="output JSON path")
    parser.set_defaults(func=run)


def _percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))} if values else {}


def _bench_one(args: dict, queue: mp.Queue) -> None:
    try:
        import torch

        if args["threads"]:
            torch.set_num_threads(args["threads"])
        from ..runtime.bev_memory import BevMemory
        from ..runtime.localizer import Localizer
        from ..runtime.prior import PriorConfig

        frames, config, tiles = benchmark_frames(args["camera"], args["frames"] + args["warmup"], cache=True)
        config.matcher.kind = args["matcher"]
        config.matcher.weights = args["weights"]
        config.matcher.backend = args["backend"]
        config.matcher.device = args["device"]
        config.matcher.sequential_frames = args["sequential"]
        localizer = Localizer(config, tiles=tiles)
        memory = BevMemory.for_localizer(localizer, PriorConfig())
        stages: dict[str, list[float]] = {}
        statuses: dict[str, int] = {}
        for k, (image, camera, prior, cov, stamp) in enumerate(frames):
            started = time.perf_counter()
            # the memory as a session keeps it (the truth-near prior standing in for odometry)
            inputs = memory.inputs(stamp, prior, 0.0, localizer.memory_shapes) if memory else None
            result = localizer.localize(image, camera, prior, cov, stamp, memory=inputs)
            if memory and result.frame_bev is not None:
                memory.add(stamp, prior, 0.0, result.frame_bev)
            total = (time.perf_counter() - started) * 1e3
            if k < args["warmup"]:
                continue
            statuses[result.status.name] = statuses.get(result.status.name, 0) + 1
            for name, ms in result.timings_ms.items():
                if name != "total":
                    stages.setdefault(name, []).append(ms)
            stages.setdefault("end_to_end", []).append(total)
        e2e = stages.pop("end_to_end", [])
        queue.put({
            "backend": localizer.backend_name,
            "device": "cuda" if "cuda" in localizer.backend_name or localizer.backend_name == "tensorrt" else "cpu",
            "end_to_end_ms": _percentiles(e2e),
            "stages_ms": {k: _percentiles(v) for k, v in stages.items()},
            # frames that ran each stage: the second look runs only below the validity gate
            "stage_frames": {k: len(v) for k, v in stages.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "frames": len(e2e),
            "statuses": statuses,
            "selection": localizer.backend_attempts,
        })
    except Exception as exc:  # reported per backend; the others still run
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run(args: argparse.Namespace) -> int:
    from ..config import atomic_write_text

    if args.frames < 1 or args.warmup < 0:
        raise ValueError("--frames must be >= 1 and --warmup >= 0")
    if not 0 <= args.sequential <= 20:
        raise ValueError(f"--sequential: expected 0 to 20 frames, got {args.sequential}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"torch", "onnxruntime", "tensorrt"}
    if unknown:
        raise ValueError(f"--backends: unknown {sorted(unknown)}; expected torch, onnxruntime, tensorrt")
    ctx = mp.get_context("spawn")
    report = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {k: v for k, v in vars(args).items() if k != "func"}}
    for backend in backends:
        queue = ctx.Queue()
        child = ctx.Process(target=_bench_one, args=({**vars(args), "backend": backend, "func": None}, queue))
        child.start()
        result = queue.get()
        child.join()
        report[backend] = result
        if "error" in result:
            print(f"{backend:12s} failed: {result['error']}")
        else:
            e2e, model = result["end_to_end_ms"], result["stages_ms"].get("model", {})
            print(f"{backend:12s} [{result['backend']}] end-to-end p50 {e2e['p50']:.1f} ms p95 {e2e['p95']:.1f} ms, "
                  f"model p50 {model.get('p50', float('nan')):.1f} ms, peak RSS {result['peak_rss_mb']:.0f} MB")
            if "second_look" in result["stages_ms"]:
                look = result["stages_ms"]["second_look"]
                print(f"{'':12s} second look on {result['stage_frames']['second_look']} of {result['frames']} frames, "
                      f"p50 {look['p50']:.1f} ms (added to those frames' end-to-end)")
    atomic_write_text(Path(args.json), json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


def benchmark_frames(camera: str, count: int, cache: bool = True, seed: int = 0):
    """Frames of a generated drive for latency benchmarks: [(image, MountedCamera, prior, prior_cov,
    stamp)] (for a rig: a list of images and the CameraRig), the LocalizerConfig pointing at the
    drive's tiles and datum, and no tile store (the localizer opens its own). Priors are the truth
    perturbed by 3 m / 3 deg."""
    import math

    import numpy as np

    from ..data.drive import DriveSpec, generate_drive, load_drive
    from ..eval.benchmark import RIG_CAMERAS
    from ..geometry import CameraRig, MountedCamera
    from ..io import camera_info_to_camera, image_to_numpy, odometry_to_se2, read_bag, transform_to_se3
    from ..runtime.settings import LocalizerConfig

    root = Path(os.environ.get("CVFM_ROS_CACHE", Path(__file__).resolve().parents[2] / ".cache"))
    duration = max(5.0, count / 10.0 + 1.0)
    spec_camera = "rig:" + ",".join(RIG_CAMERAS) if camera == "rig" else camera
    drive_dir = root / f"bench_drive_{camera}_s{seed}_{int(duration)}s"
    drive = load_drive(drive_dir) if (drive_dir / "drive.json").is_file() else generate_drive(
        drive_dir, DriveSpec(seed=seed, duration_s=duration, camera=spec_camera), progress=False)
    names = tuple(drive.topics.get("rig", [""]))  # one unnamed camera unless a rig
    image_topics = {drive.topics["image"].format(name=n): n for n in names}
    info_topics = {drive.topics["camera_info"].format(name=n): n for n in names}
    truth, extr, models, captures = {}, {}, {}, {}
    for m in read_bag(drive.bag, ["/tf_static", *info_topics, drive.topics["ground_truth"], *image_topics]):
        if m.topic == "/tf_static":
            extr = {tf.child_frame_id: transform_to_se3(tf.transform) for tf in m.message.transforms}
        elif m.topic in info_topics:
            models.setdefault(info_topics[m.topic], MountedCamera(camera_info_to_camera(m.message),
                                                                  extr[m.message.header.frame_id]))
        elif m.topic == drive.topics["ground_truth"]:
            truth[m.stamp_ns] = odometry_to_se2(m.message).data.numpy().astype(float)
        elif m.topic in image_topics and (len(captures) < count or m.stamp_ns in captures):
            captures.setdefault(m.stamp_ns, {})[image_topics[m.topic]] = image_to_numpy(m.message)
    mounted = CameraRig(tuple(models[n] for n in names), names) if camera == "rig" else models[""]
    frames = [(s, [c[n] for n in names] if camera == "rig" else c[""]) for s, c in sorted(captures.items())]
    rng = np.random.default_rng(seed)
    cov = np.diag([9.0, 9.0, math.radians(3) ** 2])
    out = [(img, mounted, truth[s] + rng.normal(0, [3, 3, math.radians(3)]), cov, s * 1e-9) for s, img in frames]
    config = LocalizerConfig()
    config.tiles.path = str(drive.tiles)
    config.tiles.max_zoom = 20
    config.datum.latitude, config.datum.longitude, config.datum.altitude = drive.datum
    return out, config, None
