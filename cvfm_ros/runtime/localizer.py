"""The runtime localizer: one camera frame + a prior -> a pose of base_link in `map` with a
calibrated covariance, a status with a reason, the matches and per-stage timings.

    localizer = Localizer(LocalizerConfig())
    result = localizer.localize(image, camera, prior, prior_cov, stamp)
    if result.ok: publish(result.pose, result.covariance)

One ground image against one aerial image (no tiles, no ROS), the user API:

    from cvfm_ros import Localizer
    localizer = Localizer.from_weights()  # the shipped weights, or a path
    result = localizer.localize_pair(ground_rgb, aerial_rgb, aerial_mpp=0.2)
    print(result.status.name, result.pose, result.covariance)

Convention: `image` is (H, W, 3) uint8 RGB; `camera` is the MountedCamera of that image (or, for
a camera rig, `image` is a list of such images, one per camera of the CameraRig `camera`, taken
together, lifted into one BEV);
`prior` is (x, y, yaw) of base_link in `map` with a 3x3 covariance; the aerial patch is north-up,
centred on the prior, at the matcher's resolution.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..geometry import CameraRig, MetricGrid, MountedCamera, PinholeCamera
from ..geometry.planar import wrap
from ..model.export import EXPORT_OUTPUTS, ExportableMatcher, contract, memory_shapes
from ..model.matcher import DEFAULT_AERIAL_MPP, gate_kind, validity_gate
from ..model.pose import CAMERA_KINDS
from ..model.yaw_search import pick_hypothesis, yaw_hypotheses
from .backends import cache_key, select_backend, source_digest
from .result import LocalizationResult, Matches, Status
from .second_look import SecondLookSettings, second_look
from .settings import LocalizerConfig

# The export contract's outputs without a BEV memory (model/export.py): the artifact key's default.
OUTPUTS = list(EXPORT_OUTPUTS)


SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "matcher.pt"
# Added to every fix's covariance over (x, y, yaw): no fix is trusted below 5 cm and 0.2 degrees.
COVARIANCE_FLOOR = (0.05**2, 0.05**2, math.radians(0.2) ** 2)


def build_matcher(settings) -> torch.nn.Module:
    """The matcher named by `MatcherSettings`: the trained ViewBridge model or the classical baseline."""
    if settings.kind == "baseline":
        from ..model import BaselineConfig, ClassicalBaseline

        matcher = ClassicalBaseline(BaselineConfig())
        matcher.exportable = False
        matcher.rig_support = False  # its flat-ground BEV takes one camera
        # its flat-ground lifting works with any camera model
        matcher.runtime_metadata = {"aerial_mpp": DEFAULT_AERIAL_MPP, "camera_models": ["panorama", "pinhole"]}
        return matcher
    from ..model import load_matcher, read_checkpoint

    path = Path(settings.weights) if settings.weights else SHIPPED_WEIGHTS
    if not path.is_file():
        raise ValueError(f"matcher.weights: {path} not found" + (
            " (no trained weights ship in this build; train with `cvfm-ros train` or set matcher.kind: baseline)"
            if not settings.weights else ""))
    matcher = load_matcher(path)
    extra = read_checkpoint(path).get("extra", {})
    meta = dict(extra.get("runtime", {}))
    train_config = extra.get("train_config", {})
    data = train_config.get("data", {}) if isinstance(train_config, dict) else {}
    meta.setdefault("aerial_mpp", data.get("aerial_mpp", matcher.config.aerial_mpp) if isinstance(data, dict)
                    else matcher.config.aerial_mpp)
    matcher.runtime_metadata = check_runtime_metadata(meta, f"matcher.weights {path}")
    return matcher


def _finite_in(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


def check_runtime_metadata(meta: dict, where: str) -> dict:
    """Validate a checkpoint's runtime metadata (the localizer trusts it for every fix): a wrong
    `aerial_mpp` scales every fix, a tiny `covariance_scale` makes every covariance a lie."""
    checks = {
        "aerial_mpp": (lambda v: _finite_in(v, 0.01, 10.0), "metres per aerial pixel in [0.01, 10]"),
        "covariance_scale": (lambda v: _finite_in(v, 1e-2, 1e4), "a factor in [0.01, 10000]"),
        "covariance_floor": (lambda v: isinstance(v, (list, tuple)) and len(v) == 3
                             and all(_finite_in(x, 1e-9, 1e4) for x in v), "3 positive variances (x, y, yaw)"),
        "camera_models": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                          and set(v) <= {"panorama", "pinhole"}, "a non-empty list of 'panorama' / 'pinhole'"),
        "camera_covariance_scales": (lambda v: isinstance(v, dict) and set(v) <= set(CAMERA_KINDS)
                                     and all(_finite_in(x, 1e-2, 1e4) for x in v.values()),
                                     f"a mapping of camera kinds ({', '.join(CAMERA_KINDS)}) to factors in [0.01, 10000]"),
    }
    for key, (ok, expected) in checks.items():
        if key in meta and not ok(meta[key]):
            raise ValueError(f"{where}: runtime metadata {key} = {meta[key]!r}, expected {expected}")
    return meta


def covariance_scale_for(meta: dict, kind: str) -> float:
    """The calibrated covariance scale for frames of a camera kind (pose.CAMERA_KINDS, as the
    validity gates: a rig's or a sequential pinhole's errors are not a panorama's):
    `camera_covariance_scales[kind]` where calibrated, else `covariance_scale` (1 without one)."""
    return float((meta.get("camera_covariance_scales") or {}).get(kind, meta.get("covariance_scale", 1.0)))


def published_covariance(meta: dict, kind: str, covariance) -> np.ndarray:
    """The covariance published for the matcher's `covariance` (3, 3) of a frame of camera kind
    `kind` (model/matcher.gate_kind), with a checkpoint's runtime metadata `meta`: the kind's
    calibrated scale, plus the floor (`covariance_floor`, default COVARIANCE_FLOOR)."""
    cov = covariance_scale_for(meta, kind) * np.asarray(covariance, dtype=float) + np.diag(
        meta.get("covariance_floor", COVARIANCE_FLOOR))
    return 0.5 * (cov + cov.T)


def _aerial_input(patch) -> np.ndarray:
    """An aerial patch as the matcher's `aerial` input: (1, 3, H, W) float32 in [0, 1]."""
    return (np.asarray(patch.image, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]


Cameras = MountedCamera | CameraRig


def _mounted(camera: Cameras) -> tuple[MountedCamera, ...]:
    """The mounted cameras of a camera or a rig."""
    return camera.cameras if isinstance(camera, CameraRig) else (camera,)


def _model_camera(camera: Cameras, size: tuple[int, int]) -> tuple[Cameras, float, float]:
    """The camera (rig) at the matcher's input size (width, height) and the (sx, sy) pixel scale."""
    width, height = size
    first = _mounted(camera)[0].camera
    return camera.resized(width, height), width / first.width, height / first.height


def _camera_key(camera: Cameras) -> str:
    if isinstance(camera, CameraRig):
        return "rig:" + "|".join(_camera_key(c) for c in camera.cameras)
    c = camera.camera
    intr = (c.kind, c.width, c.height) + ((round(c.fx, 3), round(c.fy, 3), round(c.cx, 3), round(c.cy, 3))
                                          if isinstance(c, PinholeCamera) else ())
    ext = tuple(np.round(camera.base_from_camera.matrix().numpy().reshape(-1), 4).tolist())
    return repr((intr, ext))


def artifact_key(matcher: torch.nn.Module, camera_key: str, example: dict[str, np.ndarray],
                 outputs: list[str] = OUTPUTS) -> str:
    """Key of the matcher's exported artifacts (ONNX file, TensorRT engines): its weights, config
    (solver settings change the traced graph), camera, input shapes, outputs and model code."""
    shapes = repr({k: v.shape for k, v in example.items()})
    config = repr(getattr(matcher, "config", None))
    return cache_key(matcher.state_dict(), "|".join([camera_key, shapes, config, repr(outputs), source_digest()]))


class Localizer:
    """See the module docstring. `matcher` and `tiles` may be injected (tests, replay)."""

    def __init__(self, config: LocalizerConfig, matcher: torch.nn.Module | None = None, tiles=None) -> None:
        from ..maps.geodesy import Datum
        from ..maps.tiles import TileStore

        self.config = config
        d = config.datum
        self.datum = Datum(d.latitude, d.longitude, d.altitude)
        self.tiles = tiles if tiles is not None else TileStore(config.tiles, self.datum)
        if matcher is None:
            matcher = build_matcher(config.matcher)
        self.matcher = matcher.eval()
        meta = getattr(matcher, "runtime_metadata", {}) or {}
        hg, wg = matcher.config.ground_hw
        # The matcher has static input shapes: every camera image is resized to them.
        self.ground_size: dict[str, tuple[int, int]] = {"panorama": (wg, hg), "pinhole": (wg, hg)}
        self.aerial_size = int(matcher.config.aerial_hw[0])
        self.aerial_mpp = float(meta.get("aerial_mpp", getattr(matcher.config, "aerial_mpp", DEFAULT_AERIAL_MPP)))
        # Camera models the weights were trained for (weights released before this key existed
        # were trained on panoramas only).
        self.camera_models = tuple(meta.get("camera_models", ["panorama"]))
        self.runtime_metadata = meta
        self.covariance_scale = covariance_scale_for(meta, "panorama")
        self.covariance_floor = np.diag(meta.get("covariance_floor", COVARIANCE_FLOOR))
        # Sequential BEV: past frames' BEVs in, this frame's out (a fixed number of slots: static
        # shapes); the classical baseline has no BEV to keep.
        self.memory_frames = int(config.matcher.sequential_frames) if hasattr(matcher, "bev_input_channels") else 0
        self.inputs, self.outputs = contract(self.memory_frames)
        self.memory_shapes = memory_shapes(matcher, self.memory_frames) if self.memory_frames else {}
        self._backends: dict[str, object] = {}
        self.backend_name = "not selected yet"
        self.backend_attempts: list[tuple[str, str]] = []
        cache_dir = config.matcher.cache_dir or str(Path.home() / ".cache" / "cvfm_ros")
        self.cache_dir = Path(cache_dir)

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, *, matcher: str = "model", backend: str = "auto",
                     config: LocalizerConfig | None = None) -> "Localizer":
        """A localizer for single pairs (`localize_pair`): `weights` a checkpoint (None: the shipped
        weights), `matcher` "model" or "baseline", `backend` auto|torch|onnxruntime|tensorrt. No tile
        source is opened; `localize` needs one (construct with a LocalizerConfig with tiles.path)."""
        config = config or LocalizerConfig()
        config.matcher.kind, config.matcher.backend = matcher, backend
        config.matcher.weights = "" if weights is None else str(weights)
        from .settings import check_declared_limits

        check_declared_limits(config)
        return cls(config, tiles=_NoTileSource())

    def localize_pair(self, ground: np.ndarray, aerial: np.ndarray, aerial_mpp: float,
                      camera: MountedCamera | None = None, prior: tuple[float, float, float] | None = None,
                      prior_cov: np.ndarray | None = None, camera_height_m: float = 2.0,
                      aerial_origin_uv: tuple[float, float] | None = None) -> LocalizationResult:
        """Localize `ground` (H, W, 3) uint8 RGB against one north-up `aerial` image (uint8 RGB,
        `aerial_mpp` metres per pixel; any size).

        Convention: the pose is base_link (x east, y north, metres; yaw CCW from east) relative to
        the aerial pixel `aerial_origin_uv` (default: the image centre). `camera`: the ground
        camera (default: a panorama `camera_height_m` above the ground). `prior`: (x, y, yaw),
        default the origin with an unknown heading (the yaw search runs); `prior_cov` default:
        5 m and, without a prior, 180 degrees (1 sigma).
        """
        from ..maps.aerial_image import AerialImage

        ground = np.asarray(ground)
        if ground.ndim != 3 or ground.shape[2] != 3:
            raise ValueError(f"ground: expected an (H, W, 3) RGB image, got shape {ground.shape}")
        if camera is None:
            camera = MountedCamera.panorama(ground.shape[1], ground.shape[0], camera_height_m)
        heading_known = prior is not None
        prior = np.zeros(3) if prior is None else np.asarray(prior, dtype=float)
        if prior_cov is None:
            yaw_std = math.radians(10.0) if heading_known else math.pi
            prior_cov = np.diag([25.0, 25.0, yaw_std**2])
        source = AerialImage(aerial, aerial_mpp, aerial_origin_uv)
        return self.localize(ground, camera, prior, prior_cov, stamp=0.0, aerial=source)

    # ------------------------------------------------------------------ backend per camera
    def _backend_for(self, model_camera: Cameras, example: dict[str, np.ndarray]):
        key = _camera_key(model_camera)
        if key not in self._backends:
            wrapper = ExportableMatcher(self.matcher, self.aerial_mpp, model_camera, self.memory_frames).eval()
            artifact = artifact_key(self.matcher, key, example, self.outputs)
            backend = self.config.matcher.backend
            if not getattr(self.matcher, "exportable", True):
                # The classical baseline searches with OpenCV on numpy arrays: a traced graph would
                # freeze its result into constants, so it only runs in torch.
                backend = "torch"
            selection = select_backend(backend, self.config.matcher.device, wrapper, example,
                                       self.inputs, self.outputs, self.cache_dir, artifact, ["pose"],
                                       {"pose": 0.05})
            self._backends[key] = selection.backend
            self.backend_name = selection.backend.name
            self.backend_attempts = selection.attempts
        return self._backends[key]

    def prepare(self, camera: Cameras) -> str:
        """Select, build and warm up the backend for `camera` (any size: the model camera is
        `camera` at the matcher's input size) before the first frame; returns the backend name.
        Raises ValueError when an explicitly requested backend fails."""
        size = self.ground_size[_mounted(camera)[0].camera.kind]
        model_camera, _, _ = _model_camera(camera, size)
        # A fixed random texture, not zeros: the backend check compares poses, which a blank
        # image leaves undefined.
        rng = np.random.default_rng(0)
        rig = (len(camera),) if isinstance(camera, CameraRig) else ()
        example = {
            "ground": rng.random((1, *rig, 3, size[1], size[0]), dtype=np.float32),
            "aerial": rng.random((1, 3, self.aerial_size, self.aerial_size), dtype=np.float32),
            "prior_yaw": np.zeros(1, dtype=np.float32),
            **self.empty_memory(),
        }
        self._backend_for(model_camera, example)
        return self.backend_name

    # ------------------------------------------------------------------ per frame
    def empty_memory(self) -> dict[str, np.ndarray]:
        """Memory inputs with every slot empty (sequential BEV; {} when it is off)."""
        return {name: np.zeros(shape, dtype=np.float32) for name, shape in self.memory_shapes.items()}

    def localize(self, image: np.ndarray | list[np.ndarray], camera: Cameras, prior: np.ndarray,
                 prior_cov: np.ndarray, stamp: float, aerial=None,
                 memory: dict[str, np.ndarray] | None = None) -> LocalizationResult:
        """One frame (of a rig: one image per camera); `aerial`: a patch source used instead of the
        tile store (`localize_pair`); `memory`: past frames' BEVs (runtime/bev_memory.py) when
        sequential BEV is on (None: an empty memory); the result then carries this frame's BEV
        (`frame_bev`) for the next frames.
        Stages (each timed): input checks, tiles, preprocessing, model (once per yaw hypothesis),
        solve and gates."""
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        prior = np.asarray(prior, dtype=float)
        prior_cov = np.asarray(prior_cov, dtype=float)
        problem = self._input_problem(image, camera, prior, prior_cov)
        if problem:
            return LocalizationResult(stamp, Status.BAD_INPUT, problem, timings_ms=timings)

        t0 = time.perf_counter()
        try:
            patch = (aerial or self.tiles).read_patch(prior[:2], self.aerial_size, self.aerial_mpp)
        except Exception as exc:  # the tile layer reports missing/corrupt coverage by exception
            timings["tiles"] = (time.perf_counter() - t0) * 1e3
            return LocalizationResult(stamp, Status.NO_TILES, f"{type(exc).__name__}: {exc}", timings_ms=timings)
        timings["tiles"] = (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        example, model_camera, scale = self._model_inputs(image, camera, patch, prior)
        if self.memory_frames:
            example.update(memory if memory is not None else self.empty_memory())
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        step = math.radians(self.config.matcher.yaw_search_step_deg)
        if step > 0 and getattr(self.matcher, "yaw_search", True):
            yaws = yaw_hypotheses(float(prior[2]), math.sqrt(prior_cov[2, 2]), step)
        else:
            yaws = prior[2:3]
        try:
            backend = self._backend_for(model_camera, example)
            # Backends have static batch-1 shapes, so hypotheses run one after the other.
            out, picked = pick_hypothesis([backend({**example, "prior_yaw": np.array([yaw], dtype=np.float32)})
                                           for yaw in yaws])
        except ValueError as exc:
            timings["model"] = (time.perf_counter() - t0) * 1e3
            return LocalizationResult(stamp, Status.BAD_INPUT, str(exc), timings_ms=timings)
        timings["model"] = (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        kind = gate_kind(camera, self.memory_frames > 0)
        result = self._solve(out, patch, scale, stamp, timings, kind)
        result.yaw_hypotheses = len(yaws)
        if self.memory_frames:  # this frame's own BEV, and the yaw it was lifted at (the picked hypothesis')
            result.frame_bev = {"features": out["frame_bev_features"][0], "valid": out["frame_bev_valid"][0],
                                "surface_height": out["frame_surface_height"][0], "bev_yaw": float(out["bev_yaw"][0])}
        valid, gate = bool(out["valid"][0] > 0.5), validity_gate(self.matcher, camera, self.memory_frames > 0)
        timings["solve"] = (time.perf_counter() - t0) * 1e3
        if not valid and gate is not None:
            t0 = time.perf_counter()
            valid = self._second_look(result, out, patch, aerial or self.tiles, backend,
                                      {**example, "prior_yaw": np.array([yaws[picked]], dtype=np.float32)}, gate[1],
                                      kind)
            if result.second_look_m is not None:  # the matcher ran a second time
                timings["second_look"] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        self._gate(result, prior, prior_cov, valid, gate)
        timings["solve"] += (time.perf_counter() - t0) * 1e3
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return result

    def _input_problem(self, image, camera: Cameras, prior: np.ndarray, prior_cov: np.ndarray) -> str:
        """Why the frame is bad input (naming the argument), or "" when it is fine."""
        if isinstance(camera, CameraRig):
            if not isinstance(image, (list, tuple)) or len(image) != len(camera):
                return f"image: a rig of {len(camera)} cameras needs a list of {len(camera)} images"
            if getattr(self.matcher, "rig_support", True) is False:
                return "camera: this matcher lifts one camera only (matcher.kind: model for a camera rig)"
            for i, (one, mounted) in enumerate(zip(image, camera.cameras)):
                problem = self._image_problem(one, mounted)
                if problem:
                    return f"rig camera {camera.names[i] if camera.names else i}: {problem}"
        else:
            problem = self._image_problem(image, camera)
            if problem:
                return problem
        if prior.shape != (3,) or not np.isfinite(prior).all():
            return "prior: expected a finite (x, y, yaw)"
        if (prior_cov.shape != (3, 3) or not np.isfinite(prior_cov).all()
                or np.any(np.linalg.eigvalsh(0.5 * (prior_cov + prior_cov.T)) <= 0)):
            return "prior_cov: expected a finite positive-definite 3x3 covariance"
        return ""

    def _image_problem(self, image, camera: MountedCamera) -> str:
        """Why one camera's image is bad input, or ""."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            return (f"image: expected (H, W, 3) uint8 RGB, got {getattr(image, 'shape', None)} "
                    f"{getattr(image, 'dtype', type(image).__name__)}")
        if (image.shape[1], image.shape[0]) != (camera.camera.width, camera.camera.height):
            return (f"image: {image.shape[1]}x{image.shape[0]} does not match the camera model "
                    f"{camera.camera.width}x{camera.camera.height}")
        if camera.camera.kind == "panorama" and (abs(image.shape[1] - 2 * image.shape[0]) > 0.02 * image.shape[1]
                                                 or image.shape[0] < 32):
            return (f"image: {image.shape[1]}x{image.shape[0]} is not an equirectangular panorama "
                    "(expected a 2:1 image at least 64x32; camera.model)")
        if camera.camera.kind not in self.camera_models:
            return (f"camera: a {camera.camera.kind} camera, but the matcher weights were trained for "
                    f"{' and '.join(self.camera_models)} cameras only (matcher.weights; camera.model)")
        return ""

    def _model_inputs(self, image: np.ndarray | list[np.ndarray], camera: Cameras, patch, prior: np.ndarray):
        """The matcher's inputs (EXPORT_INPUTS as float32 arrays), its camera (rig) at the input
        size and the (sx, sy) scale from the image to the matcher's ground input."""
        images = list(image) if isinstance(camera, CameraRig) else [image]
        mounted = list(_mounted(camera))
        for i, (one, cam) in enumerate(zip(images, mounted)):
            if isinstance(cam.camera, PinholeCamera) and cam.camera.is_distorted:
                images[i], undistorted = cam.camera.undistort_image(one)
                mounted[i] = MountedCamera(undistorted, cam.base_from_camera)
        camera = CameraRig(tuple(mounted), camera.names) if isinstance(camera, CameraRig) else mounted[0]
        size = self.ground_size[mounted[0].camera.kind]
        model_camera, sx, sy = _model_camera(camera, size)
        ground = np.stack([cv2.resize(one, size, interpolation=cv2.INTER_AREA) for one in images])
        ground = (ground.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)  # (R, 3, H, W)
        example = {
            "ground": ground[None] if isinstance(camera, CameraRig) else ground,
            "aerial": _aerial_input(patch),
            "prior_yaw": np.array([prior[2]], dtype=np.float32),
        }
        return example, model_camera, np.array([sx, sy])

    def _solve(self, out: dict, patch, scale: np.ndarray, stamp: float, timings: dict, kind: str) -> LocalizationResult:
        """The matcher's output in the patch frame -> a result in `map` with the covariance
        calibrated for the camera `kind` and the matches (status OK until the gates say otherwise)."""
        pose_patch = out["pose"][0].astype(float)
        pose = np.array([patch.cx + pose_patch[0], patch.cy + pose_patch[1], wrap(float(pose_patch[2]))])
        cov = published_covariance(self.runtime_metadata, kind, out["covariance"][0])
        weights = out["match_weights"][0].astype(float)
        keep = weights > 1e-4 * max(float(weights.max()), 1e-12)
        aerial_uv = out["matches_aerial_uv"][0][keep].astype(float)
        grid = MetricGrid(patch.image.shape[0], patch.image.shape[1], patch.mpp, patch.cx, patch.cy)
        map_xy = grid.pixel_to_metric(torch.as_tensor(aerial_uv)).numpy()
        ground_uv = out["matches_ground_uv"][0][keep].astype(float) / scale
        ground_camera = np.rint(out["matches_ground_camera"][0][keep]).astype(int)
        matches = Matches(ground_uv, aerial_uv, map_xy, weights[keep], ground_camera)
        score = float(weights[keep].mean()) if keep.any() else 0.0
        result = LocalizationResult(stamp, Status.OK, "", pose, cov, matches, score, timings,
                                    coverage=float(getattr(patch, "coverage", 1.0)),
                                    effective_inliers=float(out["effective_inliers"][0]))
        result.aerial_image = np.asarray(patch.image)
        return result

    def _second_look(self, result: LocalizationResult, out: dict, patch, source, backend, example: dict,
                     gate: float, kind: str) -> bool:
        """Whether a frame the validity gate refused is published after all (runtime/second_look.py):
        the matcher runs again (the yaw hypothesis picked) on a crop `gate.second_look_shift_m` off
        and both looks must agree in `map`. On acceptance `result` gets the first look's pose and
        calibrated covariance; the disagreement is recorded whenever the second look ran."""
        def match_shifted(shift: np.ndarray) -> dict | None:
            try:
                shifted = source.read_patch(np.array([patch.cx, patch.cy]) + shift, self.aerial_size, self.aerial_mpp)
            except Exception:  # no imagery there: no second look (the frame stays refused)
                return None
            return backend({**example, "aerial": _aerial_input(shifted)})

        found = second_look(self.matcher, out, self.aerial_mpp, gate, SecondLookSettings.from_gate(self.config.gate),
                            match_shifted)
        if found is None:
            return False
        result.second_look_m, result.second_look_deg = found.disagreement_m, found.disagreement_deg
        if not found.accepted:
            return False
        pose = found.first["pose"][0].double().numpy()
        result.pose = np.array([patch.cx + pose[0], patch.cy + pose[1], wrap(float(pose[2]))])
        result.covariance = published_covariance(self.runtime_metadata, kind, found.first["covariance"][0])
        return True

    def _gate(self, result: LocalizationResult, prior: np.ndarray, prior_cov: np.ndarray, valid: bool,
              validity: tuple[str, float] | None = None) -> None:
        """Confidence gates, then the Mahalanobis gate against the prior (sets status and reason)."""
        pose, cov, gate = result.pose, result.covariance, self.config.gate
        if not valid or not np.isfinite(pose).all() or not np.isfinite(cov).all():
            result.status, result.reason = Status.LOW_CONFIDENCE, "the matcher found no consistent solution"
            eff = result.effective_inliers
            if validity is not None and eff is not None and eff < validity[1]:
                result.reason = (f"effective inliers {eff:.1f} below the {validity[0]} validity gate "
                                 f"{validity[1]:.1f} (imagery the matcher cannot explain, or too little of it)")
                if result.second_look_m is not None:
                    result.reason += (f"; the second look, {gate.second_look_shift_m:g} m off, disagrees by "
                                      f"{result.second_look_m:.2f} m, {result.second_look_deg:.1f} deg")
        elif len(result.matches) < gate.min_matches:
            result.status = Status.LOW_CONFIDENCE
            result.reason = f"only {len(result.matches)} matches (< {gate.min_matches})"
        elif result.score < gate.min_score:
            result.status = Status.LOW_CONFIDENCE
            result.reason = f"mean match confidence {result.score:.3f} < {gate.min_score}"
        elif math.sqrt(max(cov[0, 0], cov[1, 1])) > gate.max_std_xy_m:
            result.status = Status.LOW_CONFIDENCE
            result.reason = f"position 1-sigma {math.sqrt(max(cov[0, 0], cov[1, 1])):.2f} m too large"
        else:
            err = pose - prior
            err[2] = wrap(err[2])
            d2 = float(err @ np.linalg.solve(prior_cov + cov, err))
            result.mahalanobis = d2
            if d2 > gate.mahalanobis_threshold:
                result.status = Status.REJECTED_BY_GATE
                result.reason = f"Mahalanobis distance² {d2:.1f} to the prior > {gate.mahalanobis_threshold}"


class _NoTileSource:
    """The tile source of a single-pair localizer: every frame needs an aerial image passed in."""

    def read_patch(self, *args, **kwargs):
        raise ValueError("no tile source: pass the aerial image (Localizer.localize_pair) or build the "
                         "Localizer from a LocalizerConfig with tiles.path")
