"""Ground/aerial pairs with pixel-level correspondences, and an on-the-fly torch Dataset.

Convention: the pose is (x, y, yaw) of base_link in `map`; the aerial patch is north-up at
`mpp`, centred at an offset from the camera (the camera lies anywhere in the central part of
the patch, as in VIGOR); correspondences map ground pixels (u, v) to aerial pixels.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ...geometry import CameraRig, MetricGrid, MountedCamera, PinholeCamera, bev_grid, wrap_angle
from .render import AerialAppearance, GroundAppearance, aerial_correspondences, render_aerial, render_ground, surface_height_grid
from .styles import get_style
from .world import World, WorldClass, generate_world


@dataclass
class PairSample:
    """One pair. For a CameraRig of R cameras every ground-image array gains a leading camera axis
    (ground (R, Hg, Wg, 3), aerial_uv (R, Hg, Wg, 2), ...), camera i's image at index i."""

    ground: np.ndarray  # (Hg, Wg, 3) uint8
    aerial: np.ndarray  # (Ha, Wa, 3) uint8
    camera: MountedCamera | CameraRig
    pose: np.ndarray  # (3,) base_link in map
    aerial_center: np.ndarray  # (2,) map metres
    mpp: float
    ground_classes: np.ndarray  # (Hg, Wg) uint8 GroundClass
    aerial_uv: np.ndarray  # (Hg, Wg, 2) float32
    visible: np.ndarray  # (Hg, Wg) bool: a valid ground<->aerial correspondence
    depth: np.ndarray  # (Hg, Wg) float32
    bev_height: np.ndarray  # (R, C) float32 true surface height on `bev`, frame (x, y, prior_yaw)
    bev: MetricGrid
    style: str
    world_seed: int
    prior_yaw: float = 0.0  # the yaw a coarse prior would give (true yaw + bounded noise)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Torch tensors in the conventions: images (3, H, W) float in [0, 1], pose (3,) etc."""
        return {
            "ground": torch.from_numpy(np.moveaxis(self.ground, -1, -3).copy()).float() / 255.0,
            "aerial": torch.from_numpy(self.aerial.transpose(2, 0, 1).copy()).float() / 255.0,
            "pose": torch.from_numpy(self.pose.astype(np.float32)),
            # pose of base_link in the patch frame (origin at the patch centre, x east, y north)
            "pose_in_patch": torch.tensor([self.pose[0] - self.aerial_center[0], self.pose[1] - self.aerial_center[1],
                                           self.pose[2]], dtype=torch.float32),
            "aerial_mpp": torch.tensor(self.mpp, dtype=torch.float32),
            "aerial_uv": torch.from_numpy(self.aerial_uv),
            "visible": torch.from_numpy(self.visible),
            "ground_classes": torch.from_numpy(self.ground_classes),
            "bev_height": torch.from_numpy(self.bev_height),
            "camera_height": torch.tensor(camera_height_m(self.camera), dtype=torch.float32),
            "prior_yaw": torch.tensor(self.prior_yaw, dtype=torch.float32),
        }


def camera_height_m(camera: MountedCamera | CameraRig) -> float:
    """Mounting height of a camera (of a rig's first camera) above the ground, metres."""
    first = camera.cameras[0] if isinstance(camera, CameraRig) else camera
    return float(first.base_from_camera.translation[2])


def sample_street_pose(world: World, rng: np.random.Generator, margin_m: float = 40.0) -> np.ndarray:
    """A pose on a road or sidewalk, heading roughly along the nearest road (±20 degrees)."""
    half = world.size_m / 2 - margin_m
    if half <= 0:
        raise ValueError(f"world of {world.size_m} m is too small for a {margin_m} m margin")
    for _ in range(1000):
        road = world.roads[rng.integers(len(world.roads))]
        k = int(rng.integers(len(road.polyline) - 1))
        p = road.polyline[k] + rng.random() * (road.polyline[k + 1] - road.polyline[k])
        d = road.polyline[k + 1] - road.polyline[k]
        nrm = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
        p = p + nrm * rng.uniform(-road.width_m / 2 - 1.5, road.width_m / 2 + 1.5)
        if np.abs(p).max() > half:
            continue
        r, c, inside = world.cell_index(p[0], p[1])
        if inside and world.classes[r, c] in (WorldClass.ROAD, WorldClass.SIDEWALK):
            yaw = math.atan2(d[1], d[0]) + (math.pi if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.35)
            return np.array([p[0], p[1], wrap_angle(yaw)])
    raise ValueError("could not find a street position in this world")


def random_camera(kind: str, rng: np.random.Generator, ground_size: tuple[int, int]) -> MountedCamera:
    """A mounted camera: height 1.4-2.2 m, small pitch/roll jitter for pinhole cameras."""
    height = float(rng.uniform(1.4, 2.2))
    if kind == "pano":
        return MountedCamera.panorama(ground_size[0], ground_size[1], height)
    if kind == "pinhole":
        w, h = ground_size
        hfov = math.radians(rng.uniform(70, 100))
        f = 0.5 * w / math.tan(hfov / 2)
        cam = PinholeCamera(f, f, (w - 1) / 2 + rng.normal(0, 2), (h - 1) / 2 + rng.normal(0, 2), w, h)
        return MountedCamera.forward_pinhole(cam, height, pitch_down_rad=math.radians(rng.uniform(0, 8)))
    raise ValueError(f"camera: expected 'pano' or 'pinhole', got {kind!r}")


def make_pair(world: World, rng: np.random.Generator, camera: str = "pano", ground_size: tuple[int, int] | None = None,
              aerial_size: int = 256, mpp: float = 0.2, max_offset_frac: float = 0.25,
              bev_size_m: float = 40.0, bev_cell_m: float = 1.0, appearance: bool = True,
              bev: MetricGrid | None = None, prior_yaw_noise_deg: float = 0.0,
              camera_override: MountedCamera | CameraRig | None = None) -> PairSample:
    """One pair from `world` (see the module docstring). A CameraRig as `camera_override` renders
    every camera of the rig at the same pose in the same appearance (PairSample's rig layout).

    `bev` (default: a `bev_size_m` square of `bev_cell_m` cells) is the grid on which the true
    surface height is given, in the frame at the true position rotated by the prior yaw (the
    true yaw plus uniform noise of at most `prior_yaw_noise_deg`; 180 means unknown)."""
    if camera not in ("pano", "pinhole"):
        raise ValueError(f"camera: expected 'pano' or 'pinhole', got {camera!r}")
    if not 32 <= aerial_size <= 2048:
        raise ValueError(f"aerial_size: expected 32 to 2048 pixels, got {aerial_size}")
    ground_size = ground_size or ((512, 256) if camera == "pano" else (384, 288))
    if min(ground_size) < 16 or max(ground_size) > 4096:
        raise ValueError(f"ground_size: expected sizes between 16 and 4096 pixels, got {ground_size}")
    pose = sample_street_pose(world, rng)
    mounted = random_camera(camera, rng, ground_size)
    if camera_override is not None:
        mounted = camera_override
    half_extent = aerial_size * mpp / 2
    offset = rng.uniform(-1, 1, 2) * max_offset_frac * half_extent
    center = pose[:2] - offset
    if isinstance(mounted, CameraRig):
        look = GroundAppearance.random(rng)  # one moment: every camera sees the same light
        grounds = [render_ground(world, pose, c, look, rng) for c in mounted.cameras]
    else:
        grounds = [render_ground(world, pose, mounted, GroundAppearance.random(rng) if appearance else None, rng)]
    aerial = render_aerial(world, center, aerial_size, mpp, AerialAppearance.random(rng) if appearance else None, rng)
    found = [aerial_correspondences(g, aerial.patch) for g in grounds]
    stack = (lambda arrays: np.stack(arrays)) if isinstance(mounted, CameraRig) else (lambda arrays: arrays[0])
    image, classes, depth = (stack([getattr(g, k) for g in grounds]) for k in ("image", "classes", "depth"))
    aerial_uv, visible = stack([uv for uv, _ in found]), stack([v for _, v in found])
    bev = bev or bev_grid(bev_size_m, bev_cell_m)
    noise = math.radians(prior_yaw_noise_deg) * rng.uniform(-1, 1)
    prior_yaw = wrap_angle(pose[2] + noise)
    heights = surface_height_grid(world, np.array([pose[0], pose[1], prior_yaw]), bev)
    return PairSample(image, aerial.image, mounted, pose, center, mpp, classes, aerial_uv, visible,
                      depth, heights, bev, world.style.name, world.seed, prior_yaw)


class SyntheticPairDataset(torch.utils.data.Dataset):
    """Deterministic on-the-fly pairs: item i comes from world `seed * 100003 + i // pairs_per_world`
    of style `styles[(i // pairs_per_world) % len(styles)]`, with a pose drawn from `(seed, i)`.

    Each DataLoader worker keeps an LRU of `cache_worlds` generated worlds, so consecutive items
    reuse a world (generation costs ~1-2 s; a pair ~0.1-0.3 s)."""

    def __init__(self, styles: list[str] | tuple[str, ...], seed: int = 0, length: int = 10000, camera: str = "pano",
                 pairs_per_world: int = 64, world_size_m: float = 192.0, cache_worlds: int = 2, **pair_kwargs) -> None:
        if not styles:
            raise ValueError("styles: expected at least one style")
        for s in styles:
            get_style(s)
        if length <= 0 or pairs_per_world <= 0:
            raise ValueError("length and pairs_per_world must be positive")
        self.styles, self.seed, self.length, self.camera = list(styles), seed, length, camera
        self.pairs_per_world, self.world_size_m, self.cache_worlds = pairs_per_world, world_size_m, cache_worlds
        self.pair_kwargs = pair_kwargs
        self._worlds: OrderedDict[int, World] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def world(self, world_index: int) -> World:
        if world_index not in self._worlds:
            style = self.styles[world_index % len(self.styles)]
            self._worlds[world_index] = generate_world(style, self.seed * 100003 + world_index, size_m=self.world_size_m)
            while len(self._worlds) > self.cache_worlds:
                self._worlds.popitem(last=False)
        self._worlds.move_to_end(world_index)
        return self._worlds[world_index]

    def sample(self, index: int) -> PairSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        world = self.world(index // self.pairs_per_world)
        rng = np.random.default_rng([self.seed, index])
        return make_pair(world, rng, camera=self.camera, **self.pair_kwargs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index).to_tensors()
