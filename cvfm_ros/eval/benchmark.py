"""Matcher evaluation on held-out synthetic pairs (CVFM protocol on our generated data).

`--benchmark synth-same`: seen city styles, worlds never used in training (unseen places);
`synth-cross`: unseen styles (cross-area). Pairs are generated deterministically from
(benchmark, seed, count), cached under the cache folder and reused. The prior is the truth
perturbed uniformly within ±10 m (the aerial patch is centred on it) and ±10° (or any yaw with
`orientation="unknown"`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..config import atomic_write_bytes
from ..geometry import SE3, CameraRig, MountedCamera, PinholeCamera, wrap_angle
from .metrics import match_precision, position_error_m, recall, summarize, yaw_error_deg

BENCHMARKS = {"synth-same": ("seen", 50_000), "synth-cross": ("unseen", 60_000)}
PRIOR_XY_M = 10.0


PINHOLE_HFOV_DEG = 90.0


def benchmark_pinhole(ground_hw: tuple[int, int], rng: np.random.Generator) -> MountedCamera:
    """The ground camera of a pinhole benchmark pair: looking forward with a 90 deg horizontal FOV
    (square pixels), pitched 0-8 deg down, mounted 1.4-2.2 m high."""
    hg, wg = ground_hw
    height = float(rng.uniform(1.4, 2.2))
    f = 0.5 * wg / math.tan(math.radians(PINHOLE_HFOV_DEG) / 2)
    return MountedCamera.forward_pinhole(PinholeCamera(f, f, (wg - 1) / 2, (hg - 1) / 2, wg, hg), height,
                                         math.radians(float(rng.uniform(0, 8))))


RIG_CAMERAS = ("front", "left", "rear", "right")
CAMERAS = ("panorama", "pinhole", "rig")


def benchmark_rig(ground_hw: tuple[int, int], rng: np.random.Generator) -> CameraRig:
    """The ground cameras of a rig benchmark pair: four benchmark pinholes (90 deg horizontal FOV,
    square pixels) at one point looking front, left, rear and right, pitched 0-8 deg down (all
    alike), mounted 1.4-2.2 m high: together they see all around, as a panorama does."""
    hg, wg = ground_hw
    height = float(rng.uniform(1.4, 2.2))
    f = 0.5 * wg / math.tan(math.radians(PINHOLE_HFOV_DEG) / 2)
    return CameraRig.ring(PinholeCamera(f, f, (wg - 1) / 2, (hg - 1) / 2, wg, hg), height, RIG_CAMERAS,
                          math.radians(float(rng.uniform(0, 8))))


def _camera_arrays(camera: MountedCamera | CameraRig) -> dict[str, np.ndarray]:
    """How a benchmark file stores its ground camera(s): extrinsics (4, 4) and pinhole intrinsics
    (fx, fy, cx, cy) (zeros for a panorama); (R, 4, 4) and (R, 4) for a rig."""
    def one(c: MountedCamera) -> tuple[np.ndarray, np.ndarray]:
        k = c.camera
        intrinsics = [k.fx, k.fy, k.cx, k.cy] if k.kind == "pinhole" else [0.0] * 4
        return c.base_from_camera.matrix().numpy(), np.array(intrinsics)
    if isinstance(camera, CameraRig):
        rows = [one(c) for c in camera.cameras]
        return {"base_from_camera": np.stack([m for m, _ in rows]), "intrinsics": np.stack([k for _, k in rows])}
    m, k = one(camera)
    return {"base_from_camera": m, "intrinsics": k}


def _stored_camera(d, ground_hw: tuple[int, int]) -> MountedCamera | CameraRig:
    """The ground camera(s) of a benchmark file at the matcher's input size (see _camera_arrays)."""
    hg, wg = ground_hw
    if d["ground"].ndim == 4:  # a rig: one pinhole per image
        return CameraRig(tuple(_stored_pinhole(k, m, wg, hg) for k, m in zip(d["intrinsics"], d["base_from_camera"])),
                         RIG_CAMERAS[:d["ground"].shape[0]] if d["ground"].shape[0] <= len(RIG_CAMERAS) else ())
    if "intrinsics" in d and float(d["intrinsics"][0]) > 0:  # a pinhole benchmark pair
        return _stored_pinhole(d["intrinsics"], d["base_from_camera"], wg, hg)
    return MountedCamera.panorama(wg, hg, float(d["camera_height"]))


def _stored_pinhole(intrinsics: np.ndarray, base_from_camera: np.ndarray, width: int, height: int) -> MountedCamera:
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    m = torch.from_numpy(np.asarray(base_from_camera)).double()
    return MountedCamera(PinholeCamera(fx, fy, cx, cy, width, height), SE3(m[:3, :3], m[:3, 3]))


HISTORY_STEP_M = 1.5  # a sequence pair's past frames: this far apart along the way it came (3 m/s at 2 Hz)
HISTORY_TURN_DEG = 2.0  # 1-sigma heading change between them
HISTORY_SPEED_MPS = 3.0


def _render_history(world, sample, frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`frames` earlier views of a pair's camera along the way it came (newest first): images, the
    past base_link in the current one, the prior yaw each was lifted at, the distance back."""
    from ..data.synth import render_ground
    from ..data.synth.render import GroundAppearance
    from ..geometry.planar import compose, relative

    pose, images, rel, yaws = np.asarray(sample.pose, dtype=float), [], [], []
    yaw_offset = sample.prior_yaw - sample.pose[2]  # the prior's heading error, kept along the sequence
    look = GroundAppearance.random(rng)
    for _ in range(frames):
        pose = compose(pose, np.array([-HISTORY_STEP_M, 0.0, math.radians(rng.normal(0.0, HISTORY_TURN_DEG))]))
        images.append(render_ground(world, pose, sample.camera, look, rng).image)
        rel.append(relative(np.asarray(sample.pose, dtype=float), pose))
        yaws.append(float(wrap_angle(pose[2] + yaw_offset)))
    return {"history_ground": np.stack(images), "history_relative": np.array(rel), "history_prior_yaw": np.array(yaws),
            "history_distance": HISTORY_STEP_M * np.arange(1, frames + 1, dtype=float)}


def history_memory(matcher: torch.nn.Module, d, batch: dict) -> dict[str, torch.Tensor] | None:
    """The BEV memory (model/sequential.py) of a sequence pair: the matcher's own BEVs of its past
    frames, with their odometry uncertainty from the prior's default noise model."""
    if "history_ground" not in d or not hasattr(matcher, "bev_input_channels"):
        return None
    from ..runtime.prior import PriorConfig, odometry_sigmas

    noise = PriorConfig()
    ground = torch.from_numpy(np.moveaxis(d["history_ground"], -1, -3).copy()).float() / 255
    k = ground.shape[0]
    with torch.inference_mode():
        out = matcher({"ground": ground, "aerial": batch["aerial"].expand(k, -1, -1, -1), "aerial_mpp": batch["aerial_mpp"],
                       "prior_yaw": torch.from_numpy(d["history_prior_yaw"]).float(), "camera": batch["camera"]})
    std = [odometry_sigmas(noise, float(m), float(m) / HISTORY_SPEED_MPS) for m in d["history_distance"]]
    return {"features": out["frame_bev_features"][None], "valid": out["frame_bev_valid"][None],
            "surface_height": out["frame_surface_height"][None],
            "relative_pose": torch.from_numpy(d["history_relative"]).float()[None],
            "bev_yaw": out["bev_yaw"][None], "pose_std": torch.tensor(std, dtype=torch.float32)[None]}


def benchmark_pairs(name: str, seed: int, count: int, cache: Path, ground_hw: tuple[int, int],
                    aerial_px: int, mpp: float, yaw_noise_deg: float, camera: str = "panorama",
                    history: int = 0) -> list[Path]:
    """Generate (once) and return the .npz files of a benchmark draw (`camera`: one of CAMERAS).
    With `history` K > 0 each pair also holds K earlier frames of its camera, HISTORY_STEP_M apart
    along the way it came (sequence pairs: `load_pair` gives the matcher their BEVs as memory)."""
    from ..data.synth import SEEN_STYLES, UNSEEN_STYLES, generate_world, make_pair
    from ..data.synth.pairs import camera_height_m

    if camera not in CAMERAS:
        raise ValueError(f"--camera: expected one of {', '.join(CAMERAS)}, got {camera!r}")
    if name not in BENCHMARKS:
        raise ValueError(f"--benchmark: expected one of {sorted(BENCHMARKS)}, got {name!r}")
    kind, seed_base = BENCHMARKS[name]
    styles = SEEN_STYLES if kind == "seen" else UNSEEN_STYLES
    folder = cache / f"{name}_s{seed}_n{count}_{ground_hw[1]}x{ground_hw[0]}_{aerial_px}px_{mpp}m_yaw{yaw_noise_deg:g}"
    if camera != "panorama":
        folder = folder.with_name(folder.name + f"_{camera}")
    if history:
        folder = folder.with_name(folder.name + f"_hist{history}")
    files = [folder / f"pair_{i:05d}.npz" for i in range(count)]
    per_world = 10
    world = None
    for i, path in enumerate(files):
        if path.is_file():
            continue
        if world is None or i % per_world == 0 or world.seed != seed_base + seed * 1000 + i // per_world:
            world = generate_world(styles[(i // per_world) % len(styles)], seed_base + seed * 1000 + i // per_world,
                                   size_m=160.0)
        rng = np.random.default_rng([seed_base, seed, i])
        camera_rng = np.random.default_rng([seed_base, seed, i, 1])
        mounted = {"panorama": lambda: None, "pinhole": lambda: benchmark_pinhole(ground_hw, camera_rng),
                   "rig": lambda: benchmark_rig(ground_hw, camera_rng)}[camera]()
        s = make_pair(world, rng, camera="pano" if mounted is None else "pinhole", ground_size=(ground_hw[1], ground_hw[0]),
                      aerial_size=aerial_px, mpp=mpp, max_offset_frac=PRIOR_XY_M / (aerial_px * mpp / 2),
                      prior_yaw_noise_deg=yaw_noise_deg, camera_override=mounted)
        past = _render_history(world, s, history, np.random.default_rng([seed_base, seed, i, 2])) if history else {}
        import io
        buf = io.BytesIO()
        np.savez_compressed(buf, ground=s.ground, aerial=s.aerial, pose=s.pose, center=s.aerial_center,
                            prior_yaw=s.prior_yaw, aerial_uv=s.aerial_uv, visible=s.visible,
                            camera_height=camera_height_m(s.camera), style=s.style, **_camera_arrays(s.camera), **past)
        atomic_write_bytes(path, buf.getvalue())
    return files


def load_pair(path: Path, matcher: torch.nn.Module, mpp: float, with_memory: bool = True) -> tuple[dict, np.ndarray, dict]:
    """A benchmark pair ready for `matcher` (the ground camera in the batch): the batch, the true
    pose (3,) of base_link in the patch frame, and the stored arrays. A sequence pair's batch holds
    the BEV memory of its past frames (`with_memory`; the matcher runs on each of them)."""
    d = np.load(path)
    camera = _stored_camera(d, matcher.config.ground_hw)
    batch = {"camera": camera, "ground": torch.from_numpy(np.moveaxis(d["ground"], -1, -3).copy()).float()[None] / 255,
             "aerial": torch.from_numpy(d["aerial"].transpose(2, 0, 1).copy()).float()[None] / 255,
             "aerial_mpp": mpp, "prior_yaw": torch.tensor([float(d["prior_yaw"])])}
    memory = history_memory(matcher, d, batch) if with_memory else None
    if memory is not None:
        batch["bev_memory"] = memory
    truth = np.array([d["pose"][0] - d["center"][0], d["pose"][1] - d["center"][1], d["pose"][2]])
    return batch, truth, d


def evaluate(matcher: torch.nn.Module, files: list[Path], mpp: float, progress: bool = True,
             prior_yaw_range_deg: float = 10.0, yaw_step_deg: float = 0.0) -> dict:
    """Run the matcher on every pair; per-sample errors plus the summary of the conventions.

    With `yaw_step_deg` > 0 a matcher that supports it runs at yaw hypotheses that far apart across
    the benchmark's uniform prior yaw range ±`prior_yaw_range_deg` (model/yaw_search.py), as the
    runtime localizer does with a loose prior; one hypothesis where the range fits in one step."""
    from tqdm import tqdm

    from ..model.yaw_search import search_yaw, yaw_hypotheses

    pos_err, yaw_err, ms, prec, hypotheses = [], [], [], [], []
    hg, wg = matcher.config.ground_hw
    search = yaw_step_deg > 0 and getattr(matcher, "yaw_search", True)
    for path in tqdm(files, disable=not progress, desc="eval", unit="pair"):
        batch, truth, d = load_pair(path, matcher, mpp)
        # the uniform ±range is covered as the ±3 sigma of yaw_hypotheses
        yaws = (yaw_hypotheses(float(batch["prior_yaw"][0]), math.radians(prior_yaw_range_deg) / 3,
                               math.radians(yaw_step_deg)) if search else batch["prior_yaw"].numpy())
        started = time.perf_counter()
        with torch.inference_mode():
            out = matcher(batch) if len(yaws) == 1 else search_yaw(matcher, batch, yaws)[0]
        ms.append((time.perf_counter() - started) * 1e3)
        hypotheses.append(len(yaws))
        pose = out["pose"][0].double().numpy()
        pos_err.append(float(position_error_m(pose[:2], truth[:2])))
        yaw_err.append(float(yaw_error_deg(pose[2], truth[2])))
        g = out["matches_ground_uv"][0].numpy()
        w = out["match_weights"][0].numpy()
        a = out["matches_aerial_uv"][0].numpy()
        u = np.clip(np.rint(g[:, 0]).astype(int), 0, wg - 1)
        v = np.clip(np.rint(g[:, 1]).astype(int), 0, hg - 1)
        visible, aerial_uv = d["visible"], d["aerial_uv"]
        if visible.ndim == 3:  # a rig: the truth of the camera each match was seen in
            cam = np.clip(out["matches_ground_camera"][0].numpy(), 0, visible.shape[0] - 1)
            visible, aerial_uv = visible[cam, v, u], aerial_uv[cam, v, u]
        else:
            visible, aerial_uv = visible[v, u], aerial_uv[v, u]
        true_uv = np.where(visible[:, None] & (g[:, :1] >= 0), aerial_uv, np.nan)
        keep = w > 0
        prec.append(match_precision(a[keep], true_uv[keep], w[keep], top_k=30))
    pos, yaw = np.array(pos_err), np.array(yaw_err)
    r = recall(pos, (1, 3, 5)) + recall(yaw, (1, 3, 5))
    p = np.nanmean(np.array(prec), axis=0) if prec else [math.nan] * 3
    return {
        "position_error_m": summarize(pos), "yaw_error_deg": summarize(yaw),
        "recall": dict(zip(["1m", "3m", "5m", "1deg", "3deg", "5deg"], r)),
        "match_precision": {"5px": float(p[0]), "10px": float(p[1]), "15px": float(p[2])},
        "ms_per_pair": float(np.median(ms)), "count": len(files), "yaw_hypotheses": int(max(hypotheses, default=1)),
        "per_sample": {"position_error_m": pos_err, "yaw_error_deg": yaw_err, "files": [f.name for f in files]},
    }


CHI2_3DOF_MEDIAN = 2.366  # median of a chi-square distribution with 3 degrees of freedom


def calibrate_covariance_scale(matcher: torch.nn.Module, files: list[Path], mpp: float,
                               floor: tuple[float, float, float]) -> dict:
    """The factor s for which the covariance the localizer reports, s * matcher covariance + floor,
    gives a median NEES over (x, y, yaw) equal to that of a calibrated 3-DoF estimate.

    Only fixes the matcher calls valid count (the others are never published). The median, not
    the mean, so that a few gross failures (which the session's gates handle) do not inflate
    every covariance. Returns the scale, the number of valid pairs and the median NEES at s = 1.
    """
    from .metrics import nees

    errors, covs = [], []
    for path in files:
        batch, truth, _ = load_pair(path, matcher, mpp)
        with torch.inference_mode():
            out = matcher(batch)
        if not bool(out["valid"][0]):
            continue
        pose = out["pose"][0].double().numpy()
        dyaw = wrap_angle(float(pose[2] - truth[2]))
        errors.append([pose[0] - truth[0], pose[1] - truth[1], dyaw])
        covs.append(out["covariance"][0].double().numpy())
    if len(errors) < 5:
        raise ValueError(f"covariance calibration: only {len(errors)} valid fixes in {len(files)} pairs (need 5)")
    e, c, fl = np.array(errors), np.array(covs), np.diag(floor)
    median_nees = lambda s: float(np.median(nees(e, s * c + fl)))  # noqa: E731
    lo, hi = 1e-3, 1e4  # the median NEES falls as s grows: bisect in log space
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if median_nees(mid) > CHI2_3DOF_MEDIAN else (lo, mid)
    return {"covariance_scale": math.sqrt(lo * hi), "valid_pairs": len(errors), "pairs": len(files),
            "median_nees_unscaled": median_nees(1.0)}


def calibrate_validity_gate(matcher: torch.nn.Module, files: list[Path], mpp: float, max_error_m: float = 3.0,
                            max_false_share: float = 0.0) -> dict:
    """The smallest `min_effective_inliers` for which fixes the matcher calls valid are trustworthy
    on imagery it cannot explain.

    Positives are the benchmark pairs; negatives pair each ground image with the aerial patch of
    the pair half the draw away (a place the camera is not in: what a matcher meets on imagery it
    does not understand, or with a prior that is far off). A draw holds 10 consecutive pairs per
    world, so with 20 pairs or more that patch is from another world, never an overlapping one.
    The threshold is the lowest effective-inlier count above every negative's and every
    positive's that the matcher calls valid but is more than `max_error_m` off, with
    `max_false_share` of them allowed through (0: none). Returns the threshold and the valid
    shares of positives and negatives before and after it.
    """
    if len(files) < 20:
        raise ValueError(f"validity calibration: need at least 20 pairs (negatives from other worlds), got {len(files)}")
    from dataclasses import replace

    previous = matcher.config
    # Score every pair with this gate open (the other validity conditions stay as they are).
    matcher.config = replace(previous, pose=replace(previous.pose, min_effective_inliers=0.0, camera_gates={}))
    try:
        pos, neg = [], []
        shift = len(files) // 2
        for i, path in enumerate(files):
            other, _, _ = load_pair(files[(i + shift) % len(files)], matcher, mpp, with_memory=False)  # its aerial
            batch, truth, _ = load_pair(path, matcher, mpp)  # last, so the matcher has this ground camera
            with torch.inference_mode():
                out = matcher(batch)
                wrong = matcher({**batch, "aerial": other["aerial"]})
            err = float(np.hypot(*(out["pose"][0, :2].double().numpy() - truth[:2])))
            pos.append((float(out["effective_inliers"][0]), bool(out["valid"][0]), err))
            neg.append((float(wrong["effective_inliers"][0]), bool(wrong["valid"][0])))
    finally:
        matcher.config = previous
    bad = sorted([score for score, valid in neg if valid] + [score for score, valid, err in pos if valid and err > max_error_m])
    allowed = int(math.floor(max_false_share * len(bad)))
    # Just above the worst score let through, in float32: the model compares its float32 scores.
    threshold = (float(np.nextafter(np.float32(bad[len(bad) - 1 - allowed]), np.float32(np.inf)))
                 if allowed < len(bad) else 0.0)
    share = lambda rows: float(np.mean([v and s >= threshold for s, v, *_ in rows]))  # noqa: E731
    return {"min_effective_inliers": threshold, "pairs": len(files),
            "positives_valid_before": float(np.mean([v for _, v, _ in pos])), "positives_valid_after": share(pos),
            "negatives_valid_before": float(np.mean([v for _, v in neg])), "negatives_valid_after": share(neg),
            "positive_scores_median": float(np.median([s for s, *_ in pos])),
            "negative_scores_max": float(max(s for s, _ in neg))}


SEQUENTIAL_GATE_FRAMES = 10  # past frames of the sequence pairs the "sequential" gate is calibrated on


def gate_camera_kinds(checkpoint: str | Path) -> list[str]:
    """The kinds of ground camera (pose.CAMERA_KINDS) a checkpoint's validity gate is calibrated
    for: panoramas always, pinholes and rigs of them where its training showed pinholes."""
    from ..model import read_checkpoint
    from ..train.release import trained_camera_models

    models = trained_camera_models(read_checkpoint(checkpoint).get("extra", {}).get("train_config", {}))
    return ["panorama", "pinhole", "rig", "sequential"] if "pinhole" in models else ["panorama"]


def calibrate_for_release(checkpoint: str | Path, pairs: int, mpp: float, cache: Path,
                          gate: bool) -> tuple[dict, dict, list[str]]:
    """Validity gate (with `gate`; one per camera kind the checkpoint serves, each on its own
    validation draw: synth-same seed 1, `pairs` pairs, not a test draw) and covariance scale
    (panoramas) -> (runtime metadata, pose-solver settings, a report line per calibration). The
    covariance is calibrated with the new gate in place, over the fixes that stay valid."""
    from dataclasses import replace

    from ..model import load_matcher
    from ..runtime.localizer import COVARIANCE_FLOOR

    matcher = load_matcher(checkpoint)

    def draw(kind: str) -> list[Path]:  # "sequential": single pinholes with SEQUENTIAL_GATE_FRAMES past frames
        camera, history = ("pinhole", SEQUENTIAL_GATE_FRAMES) if kind == "sequential" else (kind, 0)
        return benchmark_pairs("synth-same", 1, pairs, cache, matcher.config.ground_hw, matcher.config.aerial_hw[0],
                               mpp, 10.0, camera=camera, history=history)
    files = draw("panorama")
    pose, report = {}, []
    if gate:
        gates = {}
        for kind in gate_camera_kinds(checkpoint):
            g = calibrate_validity_gate(matcher, files if kind == "panorama" else draw(kind), mpp)
            gates[kind] = g["min_effective_inliers"]
            report.append(f"validity gate ({kind}) on {g['pairs']} validation pairs and as many mismatched ones: "
                          f"min_effective_inliers {g['min_effective_inliers']:.2f}; valid positives "
                          f"{g['positives_valid_before']:.0%} -> {g['positives_valid_after']:.0%}, mismatched "
                          f"{g['negatives_valid_before']:.0%} -> {g['negatives_valid_after']:.0%}")
        pose = {"min_effective_inliers": gates.pop("panorama"), "camera_gates": gates}
        matcher.config = replace(matcher.config, pose=replace(matcher.config.pose, **pose))
    result = calibrate_covariance_scale(matcher, files, mpp, COVARIANCE_FLOOR)
    report.append(f"covariance calibration on {result['valid_pairs']}/{result['pairs']} valid validation pairs: "
                  f"median NEES {result['median_nees_unscaled']:.2f} unscaled -> scale {result['covariance_scale']:.3f}")
    return {"covariance_scale": result["covariance_scale"]}, pose, report


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=2).encode())


TABLE_HEADER = ("| matcher | test set | orientation | pairs | position mean / median / p95 (m) | R@1/3/5 m "
                "| yaw median (°) | R@1/3/5° | precision@5/10/15 px | ms/pair |\n"
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table of `cvfm-ros eval` results: one row per (label, eval JSON payload)."""
    lines = [TABLE_HEADER]
    for label, r in rows:
        p, y, rec, mp, s = r["position_error_m"], r["yaw_error_deg"], r["recall"], r["match_precision"], r["settings"]
        lines.append(
            f"| {label} | {s['data']} (seed {s['seed']}) | {s['orientation']} | {r['count']} "
            f"| {p['mean']:.2f} / {p['median']:.2f} / {p['p95']:.2f} "
            f"| {rec['1m']:.0%} / {rec['3m']:.0%} / {rec['5m']:.0%} | {y['median']:.2f} "
            f"| {rec['1deg']:.0%} / {rec['3deg']:.0%} / {rec['5deg']:.0%} "
            f"| {mp['5px']:.0%} / {mp['10px']:.0%} / {mp['15px']:.0%} | {r['ms_per_pair']:.0f} |")
    return "\n".join(lines)
