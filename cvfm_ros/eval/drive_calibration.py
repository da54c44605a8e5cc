"""Covariance calibration on drive-like sequences (issue 12): the scale of the matcher's covariance
that makes the mean NEES of the fixes a replay accepts equal to its 3 degrees of freedom.

Single validation pairs (`benchmark.calibrate_covariance_scale`) calibrate the median NEES of
one-shot fixes; a drive adds what pairs lack: priors that are the localizer's own propagated
fixes, the Mahalanobis gate, and the heavier tail of the errors the EKF actually receives (the
mean, not the median). Calibration drives are generated with seeds 1000+k, never the demo's
(0) or a test drive's.

Each camera kind (pose.CAMERA_KINDS, as the validity gates) gets its own scale, on its own
calibration drives: a rig's or a sequential pinhole's errors relative to the matcher's covariance
are not a panorama's (replayed drives with the panorama scale: rig mean NEES 1.6-6.1, sequential
pinhole 5.0-12.5).

Convention: NEES over (x, y, yaw) of accepted raw fixes against the drive's ground truth; the
published covariance is `scale[kind] * model covariance + floor` (runtime/localizer.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CALIBRATION_SEED = 1000
# The drive camera each camera kind is calibrated on ("sequential": single pinholes replayed with
# SEQUENTIAL_FRAMES past BEVs, as the sequential validity gate is calibrated).
CALIBRATION_CAMERAS = {"panorama": "pano", "pinhole": "pinhole", "rig": "rig:front,left,rear,right",
                       "sequential": "pinhole"}
SEQUENTIAL_FRAMES = 10


def replay_fixes(weights: str, drive_root: Path, rate_hz: float,
                 sequential_frames: int = 0) -> tuple[np.ndarray, np.ndarray, object]:
    """Replay one generated drive (any camera: panorama, pinhole or rig) with `weights` and
    `sequential_frames` past BEVs (0: none) -> (errors (N, 3), published covariances (N, 3, 3) of
    the accepted fixes, the Localizer used)."""
    from ..data.drive import load_drive
    from ..geometry.planar import wrap
    from ..maps import Datum
    from ..runtime.localizer import Localizer
    from ..runtime.session import LocalizationSession
    from ..runtime.settings import NodeSettings
    from .bag_replay import ReplayTopics, read_events
    from .replay import ReplayRecord, run_replay

    drive = load_drive(drive_root)
    settings = NodeSettings()
    settings.tiles.path, settings.tiles.max_zoom = str(drive.tiles), 20
    settings.datum.latitude, settings.datum.longitude, settings.datum.altitude = drive.datum
    settings.camera.height_m = drive.camera_height_m
    settings.camera.model = "panorama" if drive.spec.camera == "pano" else "pinhole"
    settings.camera.rig = ",".join(drive.spec.rig_names())
    settings.matcher.kind, settings.matcher.weights = "model", str(weights)
    settings.matcher.sequential_frames = int(sequential_frames)
    localizer = Localizer(settings.localizer_config())
    topics = ReplayTopics(drive.topics["image"], drive.topics["camera_info"], drive.topics["odom"],
                          drive.topics["ground_truth"])
    problems = ReplayRecord().problems
    errors, covariances = [], []
    for segment in read_events(drive.bag, topics, settings, Datum(*drive.datum), problems):
        record = run_replay(segment.events, LocalizationSession(localizer, settings.prior), segment.truth,
                            rate_hz=rate_hz)
        for f in record.frames:
            if f.status == "OK" and f.truth is not None:
                errors.append([f.fix[0] - f.truth[0], f.fix[1] - f.truth[1], wrap(f.fix[2] - f.truth[2])])
                covariances.append(f.fix_cov)
    return np.array(errors).reshape(-1, 3), np.array(covariances).reshape(-1, 3, 3), localizer


def scale_for_mean_nees(errors: np.ndarray, model_covariances: np.ndarray, floor: np.ndarray,
                        target: float = 3.0) -> float:
    """The scale s with mean_i e_i^T (s C_i + floor)^-1 e_i = target (bisection in log s; the mean
    NEES falls monotonically as s grows)."""
    if len(errors) == 0:
        raise ValueError("covariance calibration: no accepted fixes to calibrate on")

    def mean_nees(scale: float) -> float:
        cov = scale * model_covariances + floor
        return float(np.mean(np.einsum("ni,ni->n", errors, np.linalg.solve(cov, errors[..., None])[..., 0])))

    low, high = math.log(1e-4), math.log(1e4)
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if mean_nees(math.exp(mid)) > target else (low, mid)
    return math.exp(0.5 * (low + high))


def calibration_drive(cache: Path, kind: str, index: int, duration_s: float) -> Path:
    """The folder of calibration drive `index` (seed CALIBRATION_SEED + index) for camera `kind`
    (panorama drives keep the names they had before rigs existed)."""
    camera = CALIBRATION_CAMERAS[kind]
    tag = "" if camera == "pano" else camera.replace(":", "_").replace(",", "_") + "_"
    return Path(cache) / f"calibration_drive_{tag}s{CALIBRATION_SEED + index}_{int(duration_s)}s"


def calibrate_on_drives(weights: str, drives: int, cache: Path, kinds: tuple[str, ...] = ("panorama",),
                        duration_s: float = 30.0, rate_hz: float = 2.0, progress: bool = True) -> dict:
    """Covariance scales from `drives` generated calibration drives per camera kind of `kinds` ->
    {"scales": {kind: scale}, "fixes": {kind: accepted fixes}, "report": [a line per kind]}. A kind
    whose drives give no accepted fix gets no scale (the report says so). The drives are cached
    under `cache` and reused."""
    from ..data.drive import DriveSpec, generate_drive
    from ..runtime.localizer import covariance_scale_for
    from .metrics import nees

    unknown = [k for k in kinds if k not in CALIBRATION_CAMERAS]
    if unknown:
        raise ValueError(f"covariance calibration: unknown camera kinds {unknown}, expected some of "
                         f"{list(CALIBRATION_CAMERAS)}")
    scales, counts, report = {}, {}, []
    for kind in kinds:
        errors, published, model = [], [], []
        for k in range(drives):
            root = calibration_drive(cache, kind, k, duration_s)
            if not (root / "drive.json").is_file():
                generate_drive(root, DriveSpec(seed=CALIBRATION_SEED + k, duration_s=duration_s,
                                               camera=CALIBRATION_CAMERAS[kind]), progress=progress)
            e, c, localizer = replay_fixes(weights, root, rate_hz, SEQUENTIAL_FRAMES if kind == "sequential" else 0)
            scale = covariance_scale_for(localizer.runtime_metadata, kind)
            errors.append(e)
            published.append(c)
            model.append((c - localizer.covariance_floor) / scale)
        errors, published, model = np.concatenate(errors), np.concatenate(published), np.concatenate(model)
        counts[kind] = int(len(errors))
        if not len(errors):
            report.append(f"covariance calibration ({kind}): no accepted fix on {drives} calibration drive(s); "
                          "the kind keeps the default scale")
            continue
        before, old_scale = float(np.mean(nees(errors, published))), scale
        scales[kind] = scale_for_mean_nees(errors, model, localizer.covariance_floor)
        report.append(f"covariance calibration ({kind}) on {len(errors)} accepted fixes of {drives} calibration "
                      f"drive(s): mean NEES {before:.2f} at scale {old_scale:.3f} -> scale {scales[kind]:.3f}")
    return {"scales": scales, "fixes": counts, "report": report}
