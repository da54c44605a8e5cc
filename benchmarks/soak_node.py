"""Soak the localizer node: a 30 Hz image flood plus 50 Hz odometry for a minute, over real DDS.

    .venv/bin/python benchmarks/soak_node.py [--seconds 60] [--matcher model] [--json out/soak.json]

The node runs in this process on a private context and its own domain, fed by a second node that
publishes the images of a generated drive (the nearest drive frame for every 1/30 s, stamped with
the flood's clock) and odometry interpolated from the drive at 50 Hz, in real time. Measured:
- /diagnostics period: the largest gap between two messages (issue 12 asks no gap > 2 s);
- pose age: from publishing an image to receiving the pose stamped with it, against the node's
  own inference time (p95 age < 1.5 x inference: the node works on the newest frame, no backlog);
- RSS of the process after the warm-up and at the end (flat within 10 %).
Figures go to stdout and, with --json, to a file; nothing is asserted here (a benchmark, not a test).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np


def rss_mib() -> float:
    """Resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def drive_streams(seconds: float):
    """(truth at the first frame, image frames [(t, image)], odometry [(t, pose)]) of the demo drive."""
    from cvfm_ros.io import image_to_numpy, odometry_to_se2, read_bag
    from cvfm_ros.data.drive import DriveSpec, generate_drive, load_drive

    root = Path(os.environ.get("CVFM_ROS_CACHE", Path(__file__).resolve().parents[1] / ".cache"))
    duration = max(10.0, math.ceil(seconds))
    drive_dir = root / f"soak_drive_s0_{int(duration)}s"
    drive = load_drive(drive_dir) if (drive_dir / "drive.json").is_file() else generate_drive(
        drive_dir, DriveSpec(seed=0, duration_s=duration), progress=False)
    frames, odom, truth = [], [], {}
    for m in read_bag(drive.bag, [drive.topics["image"], drive.topics["odom"], drive.topics["ground_truth"]]):
        t = m.stamp_ns * 1e-9
        if m.topic == drive.topics["image"]:
            frames.append((t, image_to_numpy(m.message)))
        elif m.topic == drive.topics["odom"]:
            odom.append((t, odometry_to_se2(m.message).data.numpy().astype(float)))
        else:
            truth[m.stamp_ns] = odometry_to_se2(m.message).data.numpy().astype(float)
    first = min(truth)
    return drive, truth[first], frames, odom


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds fed before measuring")
    parser.add_argument("--matcher", default="model", choices=["model", "baseline"])
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import Odometry
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from cvfm_ros.ros.node import LocalizerNode
    from cvfm_ros.geometry.planar import interpolate_pose

    drive, truth0, frames, odom = drive_streams(args.seconds + args.warmup)
    frame_t = np.array([t for t, _ in frames])
    odom_t = np.array([t for t, _ in odom])
    t0 = frame_t[0]

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=90 + os.getpid() % 100)
    overrides = {"tiles.path": str(drive.tiles), "tiles.max_zoom": 20, "datum.latitude": drive.datum[0],
                 "datum.longitude": drive.datum[1], "matcher.kind": args.matcher,
                 "camera.height_m": drive.camera_height_m, "initial_pose.enabled": True,
                 "initial_pose.x": float(truth0[0]), "initial_pose.y": float(truth0[1]),
                 "initial_pose.yaw": float(truth0[2]), "initial_pose.std_xy_m": 3.0,
                 "initial_pose.std_yaw_deg": 3.0, "diagnostics_period_s": 1.0}
    configure_started = time.time()
    node = LocalizerNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    configure_s = time.time() - configure_started
    peer = rclpy.create_node("soak_feeder", context=context)
    sent: dict[int, float] = {}
    ages: list[float] = []
    diag_times: list[float] = []
    diag_last: list[dict] = [{}]
    measuring = threading.Event()

    def on_pose(msg: PoseWithCovarianceStamped) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if measuring.is_set() and stamp in sent:
            ages.append(time.time() - sent[stamp])

    def on_diag(msg: DiagnosticArray) -> None:
        if measuring.is_set():
            diag_times.append(time.time())
        diag_last[0] = {kv.key: kv.value for kv in msg.status[0].values}

    peer.create_subscription(PoseWithCovarianceStamped, "/cvfm_localizer/pose", on_pose, 50)
    peer.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    image_pub = peer.create_publisher(Image, "/image", QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    odom_pub = peer.create_publisher(Odometry, "/odom", 50)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    executor.add_node(peer)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    def publish_odom(t: float) -> None:
        i = int(np.clip(np.searchsorted(odom_t, t), 1, len(odom_t) - 1))
        pose = interpolate_pose(odom_t[i - 1], odom[i - 1][1], odom_t[i], odom[i][1], t)
        msg = Odometry()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t * 1e9), 10**9)
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(pose[0]), float(pose[1])
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(pose[2] / 2), math.cos(pose[2] / 2)
        odom_pub.publish(msg)

    def publish_image(t: float) -> None:
        image = frames[int(np.argmin(np.abs(frame_t - t)))][1]
        msg = Image()
        stamp_ns = int(t * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.header.frame_id = "camera"
        msg.height, msg.width = image.shape[:2]
        msg.encoding, msg.step = "rgb8", image.shape[1] * 3
        msg.data = image.tobytes()
        sent[stamp_ns] = time.time()
        image_pub.publish(msg)

    total = args.warmup + args.seconds
    span = frame_t[-1] - t0
    started = time.time()
    next_image, next_odom = 0.0, 0.0
    rss_start = None
    while True:
        elapsed = time.time() - started
        if elapsed >= total:
            break
        if rss_start is None and elapsed >= args.warmup:
            rss_start = rss_mib()
            measuring.set()
        sim = t0 + (elapsed % span)  # the drive loops if the soak outlasts it (never here by default)
        if elapsed >= next_odom:
            publish_odom(sim)
            next_odom += 1 / 50
        if elapsed >= next_image:
            publish_image(sim)
            next_image += 1 / 30
        time.sleep(max(0.0, min(next_odom, next_image) - (time.time() - started)))
    measuring.clear()
    rss_end = rss_mib()
    time.sleep(1.0)
    diag = diag_last[0]
    stats = node.session.stats
    gaps = np.diff(diag_times) if len(diag_times) > 1 else np.array([math.inf])
    inference_p50 = stats.latency_ms(50)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "matcher": args.matcher, "backend": diag.get("backend"), "configure_s": round(configure_s, 1),
        "seconds": args.seconds, "images_sent": len(sent), "poses_received": len(ages),
        "frames_processed": stats.frames, "dropped_frames": stats.dropped_frames,
        "input_rate_hz": diag.get("input_rate_hz"),
        "diagnostics_max_gap_s": float(gaps.max()), "diagnostics_messages": len(diag_times),
        "inference_ms_p50": inference_p50, "inference_ms_p95": stats.latency_ms(95),
        "pose_age_ms_p50": 1e3 * float(np.percentile(ages, 50)) if ages else math.nan,
        "pose_age_ms_p95": 1e3 * float(np.percentile(ages, 95)) if ages else math.nan,
        "pose_age_p95_over_inference_p50": (1e3 * float(np.percentile(ages, 95)) / inference_p50
                                            if ages and inference_p50 else math.nan),
        "rss_mib_after_warmup": rss_start, "rss_mib_end": rss_end,
        "rss_change": (rss_end - rss_start) / rss_start if rss_start else math.nan,
        "statuses": dict(stats.statuses),
    }
    executor.shutdown(timeout_sec=2.0)
    node._stop_worker()
    node.destroy_node()
    peer.destroy_node()
    rclpy.shutdown(context=context)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from cvfm_ros.config import atomic_write_text

        atomic_write_text(args.json, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
