"""`cvfm-ros replay`: run the node's session over a ROS 2 bag and write an evaluation report.

Outputs in `out_dir`: TUM trajectories (`estimates.tum` raw accepted fixes, `fused.tum`,
`odometry.tum`, `ground_truth.tum`), `metrics.json`, `frames.csv` (every processed frame: status,
reason, the validity gate's effective-inlier count, fix and its error), plots and a
self-contained `report.html`, and optionally `localization/` with the fixes and per-frame match
reports.

Convention: header stamps (not record times) order and stamp everything; poses are base_link in
`map`; NavSatFix ground truth is converted through the datum.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import atomic_write_text
from ..geometry import MountedCamera, PanoramaCamera
from .metrics import TumTrajectory, position_error_m
from .replay import Event, FrameRecord, ReplayRecord, compute_metrics


@dataclass
class ReplayTopics:
    """Topics of a bag. For a camera rig (`camera.rig`), `image` and `camera_info` are templates
    with "{name}" standing for each camera's name, e.g. "/cameras/{name}/image_raw"."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    odom: str = "/odom"
    ground_truth: str = "/ground_truth/odom"
    tf_static: str = "/tf_static"

    def rig(self, names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
        """{image topic: camera name} and {camera_info topic: camera name} of a rig."""
        if "{name}" not in self.image or "{name}" not in self.camera_info:
            raise ValueError(f"--image-topic / --camera-info-topic: a rig needs templates with {{name}}, got "
                             f"{self.image!r} and {self.camera_info!r}")
        return ({self.image.format(name=n): n for n in names}, {self.camera_info.format(name=n): n for n in names})


def _truth_pose(msg, msgtype: str, datum) -> np.ndarray | None:
    from ..io import odometry_to_se2

    if msgtype.endswith("Odometry"):
        return odometry_to_se2(msg).data.numpy().astype(float)
    if msgtype.endswith("PoseStamped") or msgtype.endswith("PoseWithCovarianceStamped"):
        from ..io import quaternion_to_yaw_checked

        pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
        return np.array([pose.position.x, pose.position.y, quaternion_to_yaw_checked(pose.orientation)])
    if msgtype.endswith("NavSatFix"):
        x, y, _ = datum.geodetic_to_map(msg.latitude, msg.longitude, msg.altitude)
        return np.array([float(x), float(y), math.nan])  # no heading in a NavSatFix
    raise ValueError(f"ground truth: unsupported message type {msgtype}")


@dataclass
class Segment:
    """A stretch of a bag on one clock: time-ordered events and the ground-truth track."""

    events: list[Event]
    truth: tuple[list[float], list[np.ndarray]]


def _open_stream(bag: Path, wanted: list[str], required: tuple[str, ...], settings, problems):
    """The bag's `wanted` topics in header-stamp order, split where the clock jumps back; missing
    wanted topics are counted, a missing `required` one is a ValueError naming it."""
    from ..io import read_bag

    try:
        probe = read_bag(bag, None, on_error="partial")
    except ValueError as exc:
        raise ValueError(f"bag {bag}: {exc}") from exc
    present = set(probe.topics)
    for topic in wanted:
        if topic not in present:
            problems[f"missing topic {topic}"] += 1
    for topic in required:
        if topic not in present:
            raise ValueError(f"bag {bag}: required topic {topic} is missing (has {sorted(present)})")
    return read_bag(bag, [t for t in wanted if t in present], on_error="partial",
                    split_on_jump_s=settings.prior.time_jump_s)


def _finish(stream, segments: list[Segment], settings, problems) -> list[Segment]:
    """What a read left to report (damage, clock jumps); at least one segment."""
    if stream.error:
        problems[f"bag truncated or damaged, read up to the damage: {stream.error}"] += 1
    if len(segments) > 1:
        problems[f"clock jumped back: replayed as {len(segments)} runs, each seeded and evaluated on its own "
                 f"(prior.time_jump_s {settings.prior.time_jump_s} s)"] += 1
    return segments or [Segment([], ([], []))]


def read_events(bag: Path, topics: ReplayTopics, settings, datum, problems) -> list[Segment]:
    """Decode the bag into clock segments (one unless its clock jumps back by more than
    `settings.prior.time_jump_s`: then each run is replayed on its own instead of being merged
    by stamp), each with time-ordered events and its ground-truth track."""
    from ..io import camera_info_to_camera, image_to_numpy, odometry_to_se2, transform_to_se3

    import rosbags.rosbag2  # noqa: F401 (fail early with a clear import error)

    names = settings.camera.rig_names()
    if names:
        return _read_rig_events(bag, topics, names, settings, datum, problems)
    # At equal header stamps the bag reader keeps this order: what an image needs comes first.
    wanted = [topics.tf_static, topics.camera_info, topics.odom, topics.ground_truth, topics.image]
    stream = _open_stream(bag, wanted, (topics.image, topics.odom), settings, problems)
    types = stream.topics
    segments: list[Segment] = []
    base_from_camera = None
    camera = None
    for item in stream:
        if item.segment >= len(segments):
            segments.append(Segment([], ([], [])))
            if camera is not None:  # the camera model (often sent once) holds in every segment
                segments[-1].events.append(Event(item.stamp_ns * 1e-9, "camera", camera))
        events, (truth_t, truth_p) = segments[-1].events, segments[-1].truth
        stamp = item.stamp_ns * 1e-9
        msgtype = types[item.topic]
        try:
            if item.topic == topics.tf_static:
                for tf in item.message.transforms:
                    if tf.header.frame_id == settings.base_frame:
                        base_from_camera = transform_to_se3(tf.transform)
            elif item.topic == topics.camera_info:
                # As the node: camera.model decides; a panorama's model is its image size.
                model = camera_info_to_camera(item.message)
                if (model.kind == "panorama") != (settings.camera.model == "panorama"):
                    raise ValueError(f"a {model.kind} camera_info, but camera.model is {settings.camera.model!r} "
                                     "(ignored, as the node does)")
                if model.kind == "pinhole" and (camera is None or (model.width, model.height)
                                                != (camera.camera.width, camera.camera.height)):
                    extr = base_from_camera or settings.camera.extrinsics()
                    camera = MountedCamera(model, extr)
                    events.append(Event(stamp, "camera", camera))
            elif item.topic == topics.odom:
                events.append(Event(stamp, "odom", odometry_to_se2(item.message).data.numpy().astype(float)))
            elif item.topic == topics.ground_truth:
                truth_t.append(stamp)
                truth_p.append(_truth_pose(item.message, msgtype, datum))
            elif item.topic == topics.image:
                image = image_to_numpy(item.message)  # raw or compressed
                if settings.camera.model == "panorama" and (camera is None or (image.shape[1], image.shape[0])
                                                            != (camera.camera.width, camera.camera.height)):
                    camera = MountedCamera(PanoramaCamera(image.shape[1], image.shape[0]),
                                           base_from_camera or settings.camera.extrinsics())
                    events.append(Event(stamp, "camera", camera))
                events.append(Event(stamp, "image", image))
        except ValueError as exc:
            problems[f"{item.topic}: {exc}"] += 1
    return _finish(stream, segments, settings, problems)


def _read_rig_events(bag: Path, topics: ReplayTopics, names: tuple[str, ...], settings, datum,
                     problems) -> list[Segment]:
    """`read_events` for a camera rig: each camera's images and camera_info, grouped into rig
    frames by the node's RigSynchronizer (tolerance `camera.rig_sync_tolerance_s`); a frame is one
    "image" event (a list of images, camera order) after a "camera" event with its CameraRig.
    Extrinsics come from /tf_static (base_frame -> each image's frame_id), else the parameters."""
    from ..geometry import CameraRig
    from ..io import camera_info_to_camera, image_to_numpy, odometry_to_se2, transform_to_se3
    from ..runtime.rig_sync import RigSynchronizer

    image_topics, info_topics = topics.rig(names)
    wanted = [topics.tf_static, *info_topics, topics.odom, topics.ground_truth, *image_topics]
    stream = _open_stream(bag, wanted, (*image_topics, topics.odom), settings, problems)
    types = stream.topics
    segments: list[Segment] = []
    extrinsics: dict[str, object] = {}  # child frame -> SE3 in base_frame
    models: dict[str, object] = {}  # camera name -> PinholeCamera
    sync = RigSynchronizer(names, settings.camera.rig_sync_tolerance_s)
    rig = None
    for item in stream:
        if item.segment >= len(segments):
            segments.append(Segment([], ([], [])))
            sync.reset()
            if rig is not None:
                segments[-1].events.append(Event(item.stamp_ns * 1e-9, "camera", rig))
        events, (truth_t, truth_p) = segments[-1].events, segments[-1].truth
        stamp = item.stamp_ns * 1e-9
        try:
            if item.topic == topics.tf_static:
                for tf in item.message.transforms:
                    if tf.header.frame_id == settings.base_frame:
                        extrinsics[tf.child_frame_id] = transform_to_se3(tf.transform)
            elif item.topic in info_topics:
                model = camera_info_to_camera(item.message)
                if model.kind != "pinhole":
                    raise ValueError(f"a {model.kind} camera_info; a rig's cameras are pinholes")
                models[info_topics[item.topic]] = model
            elif item.topic == topics.odom:
                events.append(Event(stamp, "odom", odometry_to_se2(item.message).data.numpy().astype(float)))
            elif item.topic == topics.ground_truth:
                truth_t.append(stamp)
                truth_p.append(_truth_pose(item.message, types[item.topic], datum))
            elif item.topic in image_topics:
                name = image_topics[item.topic]
                frame = sync.add(name, stamp, (image_to_numpy(item.message), item.message.header.frame_id))
                if frame is None:
                    continue
                missing = [n for n in names if n not in models]
                if missing:
                    raise ValueError(f"rig frame before camera_info of {', '.join(missing)}")
                cameras = []
                for n, (image, frame_id) in zip(names, frame.items):
                    if (image.shape[1], image.shape[0]) != (models[n].width, models[n].height):
                        raise ValueError(f"camera {n}: image {image.shape[1]}x{image.shape[0]} but camera_info "
                                         f"{models[n].width}x{models[n].height}")
                    cameras.append(MountedCamera(models[n], extrinsics.get(frame_id) or settings.camera.extrinsics(n)))
                current = CameraRig(tuple(cameras), names)
                if rig is None or current != rig:
                    rig = current
                    events.append(Event(frame.stamp, "camera", rig))
                events.append(Event(frame.stamp, "image", [image for image, _ in frame.items]))
        except ValueError as exc:
            problems[f"{item.topic}: {exc}"] += 1
    if sync.dropped:
        problems[f"rig images left out of a frame (no partner within camera.rig_sync_tolerance_s "
                 f"{settings.camera.rig_sync_tolerance_s} s)"] += sync.dropped
    return _finish(stream, segments, settings, problems)


def _mosaic(localizer, frames: list[FrameRecord]):
    """An aerial mosaic around the trajectory for the plot (None where tiles are missing)."""
    pts = np.array([f.truth[:2] if f.truth is not None else f.odometry[:2] for f in frames])
    if not len(pts):
        return None, None
    lo, hi = pts.min(0) - 25, pts.max(0) + 25
    centre = (lo + hi) / 2
    size_m = float(max(hi - lo))
    mpp = max(size_m / 1024, 0.25)
    try:
        patch = localizer.tiles.read_patch(centre, int(size_m / mpp), mpp, min_coverage=0.0)
    except Exception:  # a mosaic is decoration: a report without it is still a report
        return None, None
    half = size_m / 2
    return patch.image, (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


FRAME_COLUMNS = ("stamp", "status", "reason", "matches", "score", "effective_inliers", "second_look_m", "fix_x", "fix_y",
                 "fix_yaw", "fix_std_xy_m", "truth_x", "truth_y", "truth_yaw", "fix_error_m")


def frames_csv(frames: list[FrameRecord]) -> str:
    """`frames.csv`: one row per processed frame (FRAME_COLUMNS), also the refused ones, with
    the count the validity gate compared, the second look's disagreement (where one ran) and the
    fix's error where there is a fix and truth: where availability went. Empty cells: no value (no
    fix, no truth, no matcher run)."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(FRAME_COLUMNS)
    for f in frames:
        fix = [] if f.fix is None else [f"{v:.4f}" for v in f.fix]
        std = "" if f.fix_cov is None else f"{math.sqrt(max(f.fix_cov[0, 0], f.fix_cov[1, 1])):.4f}"
        truth = [] if f.truth is None else ["" if math.isnan(v) else f"{v:.4f}" for v in f.truth]
        error = (f"{float(position_error_m(f.fix[:2], f.truth[:2])):.4f}" if f.fix is not None and f.truth is not None
                 and np.isfinite(f.truth[:2]).all() else "")
        writer.writerow([f"{f.stamp:.9f}", f.status, f.reason, f.matches, f"{f.score:.4f}",
                         "" if f.effective_inliers is None else f"{f.effective_inliers:.2f}",
                         "" if f.second_look_m is None else f"{f.second_look_m:.3f}",
                         *(fix or [""] * 3), std, *(truth or [""] * 3), error])
    return text.getvalue()


def write_outputs(out_dir: Path, record: ReplayRecord, localizer, title: str) -> dict:
    from .report import plot_errors, plot_trajectories, write_report
    from .visualize import draw_matches

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(record)
    frames = record.frames
    ok = [f for f in frames if f.status == "OK"]
    with_truth = [f for f in frames if f.truth is not None]
    tum = {
        "estimates": TumTrajectory.from_planar([f.stamp for f in ok], np.array([f.fix for f in ok]).reshape(-1, 3)),
        "fused": TumTrajectory.from_planar([f.stamp for f in frames], np.array([f.fused for f in frames]).reshape(-1, 3)),
        "odometry": TumTrajectory.from_planar([f.stamp for f in frames], np.array([f.odometry for f in frames]).reshape(-1, 3)),
        "ground_truth": TumTrajectory.from_planar([f.stamp for f in with_truth],
                                                  np.nan_to_num(np.array([f.truth for f in with_truth]).reshape(-1, 3))),
    }
    for name, traj in tum.items():
        atomic_write_text(out_dir / f"{name}.tum", traj.to_text())
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out_dir / "frames.csv", frames_csv(frames))
    mosaic, extent = _mosaic(localizer, frames)
    images = {
        "trajectories": plot_trajectories(
            {"ground truth": np.array([f.truth for f in with_truth]).reshape(-1, 3),
             "odometry": np.array([f.odometry for f in frames]).reshape(-1, 3),
             "fused": np.array([f.fused for f in frames]).reshape(-1, 3),
             "raw fixes": np.array([f.fix for f in ok]).reshape(-1, 3)},
            mosaic, extent, np.array([f.fix for f in ok]).reshape(-1, 3), np.array([f.fix_cov for f in ok]).reshape(-1, 3, 3)),
        "error_over_time": plot_errors({
            "odometry": ([f.stamp for f in with_truth], [float(np.hypot(*(f.odometry[:2] - f.truth[:2]))) for f in with_truth]),
            "fused": ([f.stamp for f in with_truth], [float(np.hypot(*(f.fused[:2] - f.truth[:2]))) for f in with_truth]),
            "raw fixes": ([f.stamp for f in ok if f.truth is not None],
                          [float(np.hypot(*(f.fix[:2] - f.truth[:2]))) for f in ok if f.truth is not None])}),
    }
    import cv2

    for k, (stamp, image, result) in enumerate(record.examples):
        if result.aerial_image is not None:
            canvas = draw_matches(image, result.aerial_image, result.matches)
            images[f"matches_{k}"] = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))[1].tobytes()
    summary = [
        ("frames processed", str(metrics["frames"])),
        ("availability (accepted fixes)", f"{100 * metrics['availability']:.1f} %"),
        ("odometry only: median / max error", f"{metrics['odometry']['median_m']:.2f} m / {metrics['odometry']['max_m']:.2f} m"),
        ("fused: median / p95 error", f"{metrics['fused']['median_m']:.2f} m / {metrics['fused']['p95_m']:.2f} m"),
        ("raw fixes: median error, yaw", f"{metrics['raw']['median_m']:.2f} m, {metrics['raw']['yaw_median_deg']:.2f} deg"),
        ("outlier rate (> 5 m)", f"{100 * metrics['outlier_rate']:.1f} %"),
        ("NEES (3 dof is calibrated)", f"{metrics['nees']:.2f}"),
        ("frames per second", f"{metrics['fps']:.2f}"),
        ("backend", str(getattr(localizer, "backend_name", "?"))),
    ]
    notes = [f"{reason}: {count}" for reason, count in sorted(record.problems.items())]
    write_report(out_dir, title, summary, metrics, images, notes)
    return metrics


def write_output_bag(path: Path, record: ReplayRecord, storage: str = "mcap") -> dict[str, int]:
    """The replay as a bag that evo and other ROS tools read: `/cvfm_localizer/pose`
    (PoseWithCovarianceStamped, each accepted fix, as the node publishes it), `/odometry/filtered`
    (nav_msgs/Odometry, the fused pose, no covariance), and `/cvfm/match_report` (a MatchReport per
    processed frame, whatever its status). All stamped with the camera image's stamp. Returns the
    message count per topic."""
    from ..io import DriveBagWriter, MatchReport
    from ..runtime.result import MATCH_REPORT_STATUS, Status

    with DriveBagWriter(path, storage=storage) as bag:
        for f in record.frames:
            stamp_ns = int(round(f.stamp * 1e9))
            code, word = MATCH_REPORT_STATUS[Status[f.status]]
            if f.status == "OK":
                bag.write_pose(stamp_ns, f.fix, f.fix_cov)
            bag.write_odometry(stamp_ns, f.fused, frame_id="map", topic="/odometry/filtered")
            t = f.timings_ms
            solved = f.fix is not None
            bag.write_match_report(stamp_ns, MatchReport(
                code, word, f.reason, num_matches=f.matches, score=f.score, time_tiles_ms=t.get("tiles", 0.0),
                time_preprocess_ms=t.get("preprocess", 0.0), time_model_ms=t.get("model", 0.0),
                time_solve_ms=t.get("solve", 0.0), time_total_ms=t.get("total", sum(t.values())),
                x=float(f.fix[0]) if solved else 0.0, y=float(f.fix[1]) if solved else 0.0,
                yaw=float(f.fix[2]) if solved else 0.0,
                covariance=tuple(np.asarray(f.fix_cov).ravel()) if f.fix_cov is not None else (0.0,) * 9))
        return dict(bag.counts)
