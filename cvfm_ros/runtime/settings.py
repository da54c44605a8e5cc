"""Settings of the localizer and the node: one dataclass tree, loaded from `config/localize.yaml`.

The same tree is declared as ROS 2 parameters by the node (dotted names, e.g. `tiles.path`) and
read from the YAML's `/**/cvfm_localizer: ros__parameters:` section by `cvfm-ros replay`, so a bag
replay runs with exactly the node's configuration. Field metadata gives each parameter's
description (`help`), numeric `range`, allowed `choices` and whether it is `read_only`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import from_dict, load_yaml, setting
from ..geometry import SE3
from ..model.yaw_search import DEFAULT_STEP_DEG
from .prior import PriorConfig
from ..maps.tiles import TileConfig

NODE_NAME = "cvfm_localizer"
RO = {"read_only": True}


@dataclass
class DatumSettings:
    """The geodetic origin of `map` (ENU)."""

    latitude: float = setting(47.6062, "datum latitude in degrees (map origin)", range=(-85.05, 85.05), **RO)
    longitude: float = setting(-122.3321, "datum longitude in degrees", range=(-180.0, 180.0), **RO)
    altitude: float = setting(0.0, "datum altitude in metres (WGS84 ellipsoid)", **RO)


@dataclass
class CameraSettings:
    """The camera model and its mounting when no TF is available."""

    model: str = setting("panorama", "camera model: panorama (equirectangular) or pinhole (uses camera_info)",
                         choices=("panorama", "pinhole"), **RO)
    frame_id: str = setting("", "camera frame for the TF lookup base_link -> camera (empty: the image's frame_id)",
                            **RO)
    x_m: float = setting(0.0, "camera position in base_link, metres (used without TF)")
    y_m: float = setting(0.0, "camera position in base_link, metres (used without TF)")
    height_m: float = setting(1.8, "camera height above the ground under base_link, metres", range=(0.2, 10.0))
    roll_deg: float = setting(0.0, "camera roll, degrees (used without TF)", range=(-45.0, 45.0))
    pitch_deg: float = setting(0.0, "camera pitch down, degrees (used without TF)", range=(-45.0, 45.0))
    yaw_deg: float = setting(0.0, "camera yaw relative to base_link +x, degrees (used without TF)", range=(-180.0, 180.0))
    rig: str = setting("", "a camera rig: comma-separated camera names (e.g. front,left,rear,right), each with its "
                       "own <name>/image and <name>/camera_info topics, lifted into one BEV (camera.model pinhole); "
                       "without TF each camera is mounted as above, turned to its name's direction "
                       "(front, left, rear, right, front_left, ...); empty: one camera", **RO)
    rig_sync_tolerance_s: float = setting(0.02, "a rig frame is one image per camera, their stamps at most this "
                                          "far apart", range=(0.0, 1.0), **RO)

    def rig_names(self) -> tuple[str, ...]:
        """The rig's camera names (empty: one camera); ValueError naming `camera.rig` if malformed."""
        if not self.rig.strip():
            return ()
        names = tuple(n.strip() for n in self.rig.split(","))
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n)]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"parameter camera.rig: expected distinct camera names (letters, digits, _) separated "
                             f"by commas, got {self.rig!r}")
        return names

    def extrinsics(self, rig_camera: str = "") -> SE3:
        """Pose of the camera frame in base_link (optical frame for pinhole, panorama frame else);
        for a rig camera, that mounting turned to the direction its name says (RIG_POSITIONS)."""
        from ..geometry import BASE_FROM_OPTICAL, RIG_POSITIONS

        yaw_deg = self.yaw_deg
        if rig_camera:
            if rig_camera not in RIG_POSITIONS:
                raise ValueError(f"camera.rig: no TF for camera {rig_camera!r} and its name is no rig position "
                                 f"({', '.join(sorted(RIG_POSITIONS))}) to mount it by")
            yaw_deg += math.degrees(RIG_POSITIONS[rig_camera])
        r, p, y = (math.radians(v) for v in (self.roll_deg, self.pitch_deg, yaw_deg))
        cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
        rz = torch.tensor([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        ry = torch.tensor([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])  # positive pitch looks down
        rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        rot = rz @ ry @ rx
        if self.model == "pinhole":
            rot = rot @ BASE_FROM_OPTICAL
        return SE3(rot, torch.tensor([self.x_m, self.y_m, self.height_m]))


@dataclass
class MatcherSettings:
    kind: str = setting("model", "model (ViewBridge matcher) or baseline (classical NCC)", choices=("model", "baseline"), **RO)
    weights: str = setting("", "checkpoint path; empty uses the weights shipped in the package", **RO)
    backend: str = setting("auto", "inference backend", choices=("auto", "torch", "onnxruntime", "tensorrt"), **RO)
    device: str = setting("auto", "inference device", choices=("auto", "cuda", "cpu"), **RO)
    cache_dir: str = setting("", "where exported ONNX/TensorRT engines are cached (empty: ~/.cache/cvfm_ros)", **RO)
    sequential_frames: int = setting(0, "sequential BEV: fuse the BEVs of up to this many past frames, warped by "
                                     "odometry, into each frame's BEV before matching (0: off)", range=(0, 20), **RO)
    sequential_max_age_s: float = setting(5.0, "sequential BEV: past frames older than this are left out, seconds",
                                          range=(0.1, 600.0))
    yaw_search_step_deg: float = setting(DEFAULT_STEP_DEG, "where the prior yaw's ±3 sigma is wider than this, "
                                         "run the matcher at "
                                         "yaw hypotheses this far apart and keep the one with most effective inliers "
                                         "(0: never; 20 suits the shipped model, trained for ±10 deg)", range=(0.0, 180.0))


@dataclass
class GateSettings:
    mahalanobis_threshold: float = setting(16.27, "reject fixes whose Mahalanobis distance squared to the prior "
                                           "exceeds this (16.27 = chi-square 3 dof at 99.9%)", range=(0.1, 1e6))
    min_matches: int = setting(12, "fewer weighted matches than this is LOW_CONFIDENCE", range=(3, 100000))
    min_score: float = setting(0.0, "mean match confidence below this is LOW_CONFIDENCE (0: off)", range=(0.0, 1.0))
    max_std_xy_m: float = setting(5.0, "a fix with a larger 1-sigma position uncertainty is LOW_CONFIDENCE", range=(0.01, 1e4))
    # The second look (runtime/localizer.py): a frame the calibrated validity gate refuses is matched
    # again on an aerial crop shifted by this much; a right fix stays where it is in `map`, a
    # fix on imagery the matcher cannot explain follows the crop (it leans to the crop centre).
    second_look_shift_m: float = setting(8.0, "shift of the second look's aerial crop (0: off); a frame below the "
                                         "validity gate is published if both looks agree", range=(0.0, 100.0))
    second_look_tolerance_m: float = setting(1.0, "the two looks' positions must agree within this", range=(0.01, 100.0))
    second_look_tolerance_deg: float = setting(3.0, "the two looks' yaws must agree within this", range=(0.01, 180.0))
    second_look_min_share: float = setting(0.4, "a second look only for frames with at least this share of the "
                                           "validity gate's effective inliers (both looks)", range=(0.0, 1.0))


@dataclass
class InitialPoseSettings:
    enabled: bool = setting(False, "seed the prior from these values at start and after a bag restart "
                            "(else /initialpose or a NavSatFix)", **RO)
    x: float = setting(0.0, "initial x in map, metres", **RO)
    y: float = setting(0.0, "initial y in map, metres", **RO)
    yaw: float = setting(0.0, "initial yaw in map, radians CCW from east", range=(-math.pi, math.pi), **RO)
    std_xy_m: float = setting(5.0, "1-sigma of the initial position", range=(0.01, 1e4), **RO)
    std_yaw_deg: float = setting(5.0, "1-sigma of the initial yaw", range=(0.01, 180.0), **RO)


@dataclass
class LocalizerConfig:
    """Everything `Localizer` needs (no ROS)."""

    datum: DatumSettings = field(default_factory=DatumSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    matcher: MatcherSettings = field(default_factory=MatcherSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    tiles: TileConfig = field(default_factory=TileConfig)


@dataclass
class NodeSettings:
    """The node's parameters (ROS names are the dotted paths of these fields)."""

    autostart: bool = setting(True, "configure and activate at start (else drive the lifecycle externally)", **RO)
    map_frame: str = setting("map", "frame of the published pose", **RO)
    odom_frame: str = setting("odom", "odometry frame", **RO)
    base_frame: str = setting("base_link", "robot body frame", **RO)
    tf_mode: str = setting("map_to_odom", "map_to_odom (no EKF), leaf (EKF owns map->odom) or none",
                           choices=("map_to_odom", "leaf", "none"), **RO)
    leaf_frame: str = setting("cvfm_base_link", "child frame of the TF in leaf mode", **RO)
    use_compressed: bool = setting(False, "subscribe to image/compressed (sensor_msgs/CompressedImage)", **RO)
    diagnostics_period_s: float = setting(1.0, "period of /diagnostics", range=(0.05, 60.0), **RO)
    odom_wait_s: float = setting(0.1, "how long an image waits for odometry at or past its stamp before the "
                                 "prior and map->odom use extrapolated odometry", range=(0.0, 2.0), **RO)
    initial_pose: InitialPoseSettings = field(default_factory=InitialPoseSettings)
    prior: PriorConfig = field(default_factory=PriorConfig)
    datum: DatumSettings = field(default_factory=DatumSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    matcher: MatcherSettings = field(default_factory=MatcherSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    tiles: TileConfig = field(default_factory=TileConfig)

    def localizer_config(self) -> LocalizerConfig:
        return LocalizerConfig(self.datum, self.camera, self.matcher, self.gate, self.tiles)

    def validate(self) -> None:
        """Every field's declared `range` and `choices` (the same limits the ROS parameter
        descriptors state, so a YAML file for replay is held to them too), then cross-field
        checks; errors name the dotted parameter."""
        check_declared_limits(self)
        if self.camera.rig_names() and self.camera.model != "pinhole":
            raise ValueError(f"parameter camera.rig: a rig of pinhole cameras needs camera.model pinhole, "
                             f"got {self.camera.model!r}")
        if self.tf_mode == "leaf" and self.leaf_frame in (self.map_frame, self.odom_frame, self.base_frame):
            raise ValueError(f"parameter leaf_frame: must differ from map/odom/base frames, got {self.leaf_frame!r}")
        lat = self.datum.latitude
        if not (math.isfinite(lat) and abs(lat) < 85.05):
            raise ValueError(f"parameter datum.latitude: expected a latitude within ±85.05°, got {lat}")

    def datum_object(self):
        from ..maps.geodesy import Datum

        d = self.datum
        return Datum(d.latitude, d.longitude, d.altitude)


def check_declared_limits(settings, prefix: str = "") -> None:
    """Check each field of a settings dataclass tree against its metadata `range` and `choices`."""
    import dataclasses

    for f in dataclasses.fields(settings):
        value, name = getattr(settings, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_declared_limits(value, f"{name}.")
            continue
        low_high, choices = f.metadata.get("range"), f.metadata.get("choices")
        if low_high is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = low_high
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"parameter {name}: expected a value in [{low}, {high}], got {value}")
        if choices is not None and value not in choices:
            raise ValueError(f"parameter {name}: expected one of {list(choices)}, got {value!r}")


def load_node_settings(path: str | Path) -> NodeSettings:
    """Read `config/localize.yaml` (ROS 2 parameter file layout) without ROS."""
    data = load_yaml(path)
    # The node's keys as rclpy matches them: any namespace, the root namespace, or every node.
    keys = [f"/**/{NODE_NAME}", NODE_NAME, f"/{NODE_NAME}", "/**"]
    section = next((data[k] for k in keys if k in data), {})
    params = section.get("ros__parameters", None) if isinstance(section, dict) else None
    if params is None:
        raise ValueError(f"config file {path}: expected '/**/{NODE_NAME}: ros__parameters:' (or {NODE_NAME}:)")
    settings = from_dict(NodeSettings, params, where=f"{path}")
    settings.validate()
    return settings
