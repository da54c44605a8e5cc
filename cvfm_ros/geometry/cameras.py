"""Camera models: equirectangular panorama and pinhole (OpenCV distortion), plus mounting.

Convention (docs/CONVENTIONS.md):
- Pinhole cameras work in the optical frame: z forward, x right, y down. Pixels follow OpenCV
  (the centre of the top-left pixel is (0, 0)).
- Panoramas work in the panorama frame, whose axes are those of `base_link` (x forward, y left,
  z up). Pixel u = W/2 looks along +x; azimuth grows to the right (clockwise seen from above);
  the top row is +90 deg elevation, the bottom -90 deg and the horizon is v = H/2.
- `MountedCamera.base_from_camera` is the pose of the camera frame in `base_link`; camera height
  above the ground is its z translation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .checks import check_tensor
from .poses import SE3

# Rotation taking optical-frame coordinates (z fwd, x right, y down) to base_link axes
# (x fwd, y left, z up); its columns are the optical axes written in base_link.
BASE_FROM_OPTICAL = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class PanoramaCamera:
    """Equirectangular panorama of `width` x `height` pixels covering 360 x 180 degrees."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"PanoramaCamera: width and height must be positive, got {self.width}x{self.height}")

    kind = "panorama"

    def resized(self, width: int, height: int) -> "PanoramaCamera":
        """The same panorama for the image resized to width x height."""
        return PanoramaCamera(width, height)

    def project(self, points: torch.Tensor, eps: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (..., 3) in the panorama frame -> pixels (..., 2) as (u, v) and valid (...,) bool.

        A point at the camera centre has no direction and is invalid; every other point is seen.
        """
        check_tensor("points", points, (..., 3))
        x, y, z = points.unbind(-1)
        horizontal = torch.sqrt(x * x + y * y + eps * eps)
        azimuth_cw = torch.atan2(-y, x)
        elevation = torch.atan2(z, horizontal)
        u = self.width / 2 + azimuth_cw / (2 * math.pi) * self.width
        u = torch.remainder(u, self.width)
        v = self.height / 2 - elevation / math.pi * self.height
        valid = points.norm(dim=-1) > eps
        return torch.stack([u, v], -1), valid

    def unproject(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (..., 2) -> unit ray directions (..., 3) in the panorama frame."""
        check_tensor("pixels", pixels, (..., 2))
        u, v = pixels.unbind(-1)
        azimuth_cw = (u - self.width / 2) / self.width * 2 * math.pi
        elevation = (self.height / 2 - v) / self.height * math.pi
        c = torch.cos(elevation)
        return torch.stack([c * torch.cos(azimuth_cw), -c * torch.sin(azimuth_cw), torch.sin(elevation)], -1)


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole camera with OpenCV's (k1, k2, p1, p2[, k3]) distortion, as in sensor_msgs/CameraInfo."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = field(default=(0.0, 0.0, 0.0, 0.0, 0.0))

    kind = "pinhole"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"PinholeCamera: width and height must be positive, got {self.width}x{self.height}")
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"PinholeCamera: {name} must be a positive focal length in pixels, got {value}")
        if len(self.distortion) not in (4, 5, 8):
            raise ValueError(f"PinholeCamera: distortion must have 4, 5 or 8 coefficients, got {len(self.distortion)}")

    def resized(self, width: int, height: int) -> "PinholeCamera":
        """The same camera for the image resized to width x height.

        Convention: OpenCV pixel centres are kept ((c + 0.5) scales); the distortion acts on
        normalised coordinates, so it is unchanged."""
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                             width, height, self.distortion)

    @classmethod
    def from_camera_info(cls, k: list[float] | np.ndarray, d: list[float] | np.ndarray, width: int,
                         height: int) -> "PinholeCamera":
        """Build from CameraInfo's row-major 3x3 `k` and `d` (plumb_bob)."""
        k = np.asarray(k, dtype=float).reshape(-1)
        if k.size != 9:
            raise ValueError(f"k: expected 9 values (row-major 3x3), got {k.size}")
        d = tuple(float(x) for x in d) or (0.0, 0.0, 0.0, 0.0, 0.0)
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height), d)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 (the standard symbol)
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=float)

    @property
    def is_distorted(self) -> bool:
        return any(abs(c) > 0 for c in self.distortion)

    def _distort(self, xn: torch.Tensor, yn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = list(self.distortion) + [0.0] * (8 - len(self.distortion))
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = xn * xn + yn * yn
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = xn * radial + 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
        yd = yn * radial + p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
        return xd, yd

    def project(self, points: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (..., 3) in the optical frame -> pixels (..., 2) and valid (...,) bool.

        Valid means in front of the camera (z > eps) and inside the image bounds. The distortion
        model is OpenCV's, written in torch so that it is differentiable.
        """
        check_tensor("points", points, (..., 3))
        x, y, z = points.unbind(-1)
        in_front = z > eps
        zs = torch.where(in_front, z, torch.ones_like(z))
        xn, yn = x / zs, y / zs
        if self.is_distorted:
            xn, yn = self._distort(xn, yn)
        u = self.fx * xn + self.cx
        v = self.fy * yn + self.cy
        inside = (u >= -0.5) & (u <= self.width - 0.5) & (v >= -0.5) & (v <= self.height - 0.5)
        return torch.stack([u, v], -1), in_front & inside

    def unproject(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (..., 2) -> rays (..., 3) in the optical frame with z = 1 (undistorted by OpenCV)."""
        check_tensor("pixels", pixels, (..., 2))
        if self.is_distorted:
            flat = pixels.detach().reshape(-1, 1, 2).cpu().numpy().astype(np.float64)
            und = cv2.undistortPoints(flat, self.K, np.asarray(self.distortion, dtype=np.float64)).reshape(pixels.shape)
            xy = torch.as_tensor(und, dtype=pixels.dtype, device=pixels.device)
        else:
            xy = torch.stack([(pixels[..., 0] - self.cx) / self.fx, (pixels[..., 1] - self.cy) / self.fy], -1)
        return torch.cat([xy, torch.ones_like(xy[..., :1])], -1)

    def undistort_image(self, image: np.ndarray) -> tuple[np.ndarray, "PinholeCamera"]:
        """Undistort an image (H, W[, C]) with OpenCV; returns it and the distortion-free camera."""
        if not self.is_distorted:
            return image, self
        out = cv2.undistort(image, self.K, np.asarray(self.distortion, dtype=np.float64))
        return out, PinholeCamera(self.fx, self.fy, self.cx, self.cy, self.width, self.height)


Camera = PanoramaCamera | PinholeCamera


@dataclass(frozen=True)
class MountedCamera:
    """A camera model and its extrinsics: the pose of the camera frame in `base_link`.

    For a pinhole camera the camera frame is the optical frame; for a panorama it is the panorama
    frame (base_link axes, translated to the lens centre).
    """

    camera: Camera
    base_from_camera: SE3

    @classmethod
    def panorama(cls, width: int, height: int, height_m: float) -> "MountedCamera":
        """A level panorama `height_m` above `base_link`'s origin."""
        return cls(PanoramaCamera(width, height),
                   SE3(torch.eye(3), torch.tensor([0.0, 0.0, float(height_m)])))

    @classmethod
    def forward_pinhole(cls, camera: PinholeCamera, height_m: float, pitch_down_rad: float = 0.0) -> "MountedCamera":
        """A pinhole looking along base_link +x, `height_m` up, tilted down by `pitch_down_rad`."""
        return cls.pinhole(camera, height_m, yaw_rad=0.0, pitch_down_rad=pitch_down_rad)

    @classmethod
    def pinhole(cls, camera: PinholeCamera, height_m: float, yaw_rad: float = 0.0, pitch_down_rad: float = 0.0,
                position_xy: tuple[float, float] = (0.0, 0.0)) -> "MountedCamera":
        """A pinhole at (`position_xy`, `height_m`) in base_link, looking along base_link +x turned
        by `yaw_rad` (CCW seen from above: pi/2 looks left) and tilted down by `pitch_down_rad`."""
        c, s = math.cos(pitch_down_rad), math.sin(pitch_down_rad)
        # Pitch about base_link +y: positive pitch turns +x towards -z (down).
        pitch = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
        yaw = torch.tensor([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        translation = torch.tensor([float(position_xy[0]), float(position_xy[1]), float(height_m)])
        return cls(camera, SE3(yaw @ pitch @ BASE_FROM_OPTICAL, translation))

    def resized(self, width: int, height: int) -> "MountedCamera":
        """The same mounted camera for the image resized to width x height."""
        return MountedCamera(self.camera.resized(width, height), self.base_from_camera)

    @property
    def height_m(self) -> float:
        return float(self.base_from_camera.translation[..., 2])

    def project_base_points(self, points_base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (..., 3) in `base_link` -> pixels (..., 2) and valid (...,)."""
        check_tensor("points_base", points_base, (..., 3))
        cam_from_base = self.base_from_camera.inverse()
        r = cam_from_base.rotation.to(points_base)
        t = cam_from_base.translation.to(points_base)
        return self.camera.project(points_base @ r.transpose(-1, -2) + t)

    def rays_in_base(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (..., 2) -> ray directions (..., 3) in `base_link` axes (not normalised)."""
        rays = self.camera.unproject(pixels)
        return rays @ self.base_from_camera.rotation.to(rays).transpose(-1, -2)


# Yaw of each named rig position (CCW from base_link +x, seen from above).
RIG_POSITIONS = {"front": 0.0, "left": math.pi / 2, "rear": math.pi, "right": -math.pi / 2,
                 "front_left": math.pi / 4, "front_right": -math.pi / 4, "rear_left": 3 * math.pi / 4,
                 "rear_right": -3 * math.pi / 4}


@dataclass(frozen=True)
class CameraRig:
    """Several mounted cameras of one robot whose images are lifted into one BEV.

    Every camera's image has the same size (the matcher resizes each to its input size first), so
    the rig's images stack into one (N, 3, H, W) tensor; camera i is `cameras[i]`, `names[i]`.
    Convention: each camera's `base_from_camera` is its own pose in `base_link` (as for a single
    camera); the rig adds no frame of its own.
    """

    cameras: tuple[MountedCamera, ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.cameras or not all(isinstance(c, MountedCamera) for c in self.cameras):
            raise ValueError("CameraRig: expected one or more MountedCamera")
        sizes = {(c.camera.width, c.camera.height) for c in self.cameras}
        if len(sizes) != 1:
            raise ValueError(f"CameraRig: every camera's image must have the same size, got {sorted(sizes)} (WxH)")
        if self.names and len(self.names) != len(self.cameras):
            raise ValueError(f"CameraRig: {len(self.names)} names for {len(self.cameras)} cameras")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"CameraRig: camera names must be distinct, got {list(self.names)}")

    @classmethod
    def ring(cls, camera: PinholeCamera, height_m: float, names: tuple[str, ...] | list[str] = ("front", "left", "rear", "right"),
             pitch_down_rad: float = 0.0) -> "CameraRig":
        """Identical pinholes at one point, each looking towards a named position of RIG_POSITIONS."""
        unknown = [n for n in names if n not in RIG_POSITIONS]
        if unknown:
            raise ValueError(f"rig cameras: unknown position(s) {unknown}; expected names from {sorted(RIG_POSITIONS)}")
        return cls(tuple(MountedCamera.pinhole(camera, height_m, RIG_POSITIONS[n], pitch_down_rad) for n in names),
                   tuple(names))

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every camera's image."""
        return self.cameras[0].camera.width, self.cameras[0].camera.height

    def resized(self, width: int, height: int) -> "CameraRig":
        """The same rig for images resized to width x height."""
        return CameraRig(tuple(c.resized(width, height) for c in self.cameras), self.names)

    def project_base_points(self, points_base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (..., 3) in `base_link` -> pixels (N, ..., 2) and valid (N, ...) in each camera."""
        projected = [c.project_base_points(points_base) for c in self.cameras]
        return torch.stack([p for p, _ in projected]), torch.stack([v for _, v in projected])

    def first_view(self, points_base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points (..., 3) -> pixels (..., 2) in the first camera that sees each, that camera's
        index (...,) (int64, -1 where none does) and seen (...,) bool."""
        pixels, valid = self.project_base_points(points_base)
        seen = valid.any(0)
        index = torch.where(seen, valid.to(torch.int64).argmax(0), torch.full_like(seen, -1, dtype=torch.int64))
        gather = index.clamp(min=0).unsqueeze(0).unsqueeze(-1).expand(1, *pixels.shape[1:])
        return torch.gather(pixels, 0, gather).squeeze(0), index, seen
