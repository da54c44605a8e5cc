"""Batched SE(2) and SE(3) poses, yaw wrapping and ROS quaternion conversions.

Convention (docs/CONVENTIONS.md): planar poses are (x, y, yaw) in metres and radians, yaw is
the angle of the body +x axis from the frame's +x axis (east in `map`), counter-clockwise
positive, wrapped to (-pi, pi]. Quaternions use ROS order (x, y, z, w).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_tensor


def wrap_angle(angle):
    """Wrap radians to (-pi, pi]: the package's one angle wrap, for floats, numpy arrays and
    tensors of any shape (pi stays pi, -pi becomes pi)."""
    if isinstance(angle, torch.Tensor):
        return math.pi - torch.remainder(math.pi - angle, 2 * math.pi)
    if isinstance(angle, np.ndarray):
        return math.pi - np.mod(math.pi - angle, 2 * math.pi)
    return math.pi - math.fmod(math.fmod(math.pi - angle, 2 * math.pi) + 2 * math.pi, 2 * math.pi)


def rotation_2d(yaw: torch.Tensor) -> torch.Tensor:
    """(...,) yaw -> (..., 2, 2) counter-clockwise rotation matrices."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


@dataclass(frozen=True)
class SE2:
    """A batch of planar poses: `data` is (..., 3) holding (x, y, yaw).

    `a.compose(b)` is a∘b (apply b first); `pose.apply(p)` maps points from the body frame into
    the parent frame.
    """

    data: torch.Tensor

    def __post_init__(self) -> None:
        check_tensor("SE2.data", self.data, (..., 3))

    @classmethod
    def from_xy_yaw(cls, x, y, yaw) -> "SE2":
        x, y, yaw = (torch.as_tensor(v, dtype=torch.get_default_dtype()) if not isinstance(v, torch.Tensor) else v
                     for v in (x, y, yaw))
        x, y, yaw = torch.broadcast_tensors(x, y, yaw)
        return cls(torch.stack([x, y, wrap_angle(yaw)], -1))

    @classmethod
    def identity(cls, *batch: int, dtype: torch.dtype | None = None) -> "SE2":
        return cls(torch.zeros(*batch, 3, dtype=dtype or torch.get_default_dtype()))

    @property
    def x(self) -> torch.Tensor:
        return self.data[..., 0]

    @property
    def y(self) -> torch.Tensor:
        return self.data[..., 1]

    @property
    def yaw(self) -> torch.Tensor:
        return self.data[..., 2]

    @property
    def translation(self) -> torch.Tensor:
        return self.data[..., :2]

    @property
    def rotation(self) -> torch.Tensor:
        return rotation_2d(self.yaw)

    def matrix(self) -> torch.Tensor:
        """(..., 3, 3) homogeneous matrices."""
        out = torch.zeros(*self.data.shape[:-1], 3, 3, dtype=self.data.dtype, device=self.data.device)
        out[..., :2, :2] = self.rotation
        out[..., :2, 2] = self.translation
        out[..., 2, 2] = 1
        return out

    def compose(self, other: "SE2") -> "SE2":
        t = self.translation + (self.rotation @ other.translation.unsqueeze(-1)).squeeze(-1)
        yaw = wrap_angle(self.yaw + other.yaw)
        return SE2(torch.cat([t, yaw.unsqueeze(-1)], -1))

    def inverse(self) -> "SE2":
        rt = self.rotation.transpose(-1, -2)
        t = -(rt @ self.translation.unsqueeze(-1)).squeeze(-1)
        return SE2(torch.cat([t, wrap_angle(-self.yaw).unsqueeze(-1)], -1))

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Map points (..., N, 2) in the body frame to the parent frame."""
        check_tensor("points", points, (..., 2))
        return points @ self.rotation.transpose(-1, -2) + self.translation.unsqueeze(-2)

    def __getitem__(self, index) -> "SE2":
        return SE2(self.data[index])


@dataclass(frozen=True)
class SE3:
    """A batch of rigid transforms: rotation (..., 3, 3) and translation (..., 3).

    As a pose "parent_T_child" it maps points in `child` coordinates to `parent` coordinates.
    """

    rotation: torch.Tensor
    translation: torch.Tensor

    def __post_init__(self) -> None:
        check_tensor("SE3.rotation", self.rotation, (..., 3, 3))
        check_tensor("SE3.translation", self.translation, (..., 3))
        if self.rotation.shape[:-2] != self.translation.shape[:-1]:
            raise ValueError(
                f"SE3: rotation batch {tuple(self.rotation.shape[:-2])} does not match "
                f"translation batch {tuple(self.translation.shape[:-1])}"
            )

    @classmethod
    def identity(cls, *batch: int, dtype: torch.dtype | None = None) -> "SE3":
        dtype = dtype or torch.get_default_dtype()
        return cls(torch.eye(3, dtype=dtype).expand(*batch, 3, 3).clone(), torch.zeros(*batch, 3, dtype=dtype))

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor) -> "SE3":
        check_tensor("matrix", matrix, (..., 4, 4))
        return cls(matrix[..., :3, :3], matrix[..., :3, 3])

    @classmethod
    def from_quaternion(cls, quaternion_xyzw: torch.Tensor, translation: torch.Tensor) -> "SE3":
        return cls(quaternion_to_matrix(quaternion_xyzw), translation)

    @classmethod
    def from_se2(cls, pose: SE2, z: float | torch.Tensor = 0.0) -> "SE3":
        """Lift planar poses to SE(3) about the z axis at height z."""
        r2 = pose.rotation
        rot = torch.zeros(*r2.shape[:-2], 3, 3, dtype=r2.dtype, device=r2.device)
        rot[..., :2, :2] = r2
        rot[..., 2, 2] = 1
        z = torch.as_tensor(z, dtype=r2.dtype, device=r2.device).expand(pose.x.shape)
        return cls(rot, torch.stack([pose.x, pose.y, z], -1))

    def matrix(self) -> torch.Tensor:
        out = torch.zeros(*self.rotation.shape[:-2], 4, 4, dtype=self.rotation.dtype, device=self.rotation.device)
        out[..., :3, :3] = self.rotation
        out[..., :3, 3] = self.translation
        out[..., 3, 3] = 1
        return out

    def compose(self, other: "SE3") -> "SE3":
        return SE3(self.rotation @ other.rotation,
                   self.translation + (self.rotation @ other.translation.unsqueeze(-1)).squeeze(-1))

    def inverse(self) -> "SE3":
        rt = self.rotation.transpose(-1, -2)
        return SE3(rt, -(rt @ self.translation.unsqueeze(-1)).squeeze(-1))

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Map points (..., N, 3) from the child frame to the parent frame."""
        check_tensor("points", points, (..., 3))
        return points @ self.rotation.transpose(-1, -2) + self.translation.unsqueeze(-2)

    def quaternion(self) -> torch.Tensor:
        return matrix_to_quaternion(self.rotation)

    def to_se2(self) -> SE2:
        """Project onto the plane: (x, y) and the yaw of the child's +x axis."""
        yaw = torch.atan2(self.rotation[..., 1, 0], self.rotation[..., 0, 0])
        return SE2(torch.stack([self.translation[..., 0], self.translation[..., 1], yaw], -1))


def yaw_to_quaternion(yaw: torch.Tensor) -> torch.Tensor:
    """(...,) yaw in radians -> (..., 4) quaternion (x, y, z, w) of a rotation about +z."""
    half = 0.5 * yaw
    zero = torch.zeros_like(half)
    return torch.stack([zero, zero, torch.sin(half), torch.cos(half)], -1)


def quaternion_to_yaw(quaternion_xyzw: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (x, y, z, w) -> (...,) yaw (ZYX Euler), wrapped to (-pi, pi]."""
    check_tensor("quaternion_xyzw", quaternion_xyzw, (..., 4))
    x, y, z, w = quaternion_xyzw.unbind(-1)
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return wrap_angle(yaw)


def quaternion_to_matrix(quaternion_xyzw: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (x, y, z, w), normalised here -> (..., 3, 3) rotation matrix."""
    check_tensor("quaternion_xyzw", quaternion_xyzw, (..., 4))
    norm = quaternion_xyzw.norm(dim=-1, keepdim=True)
    if (norm < 1e-9).any():
        raise ValueError("quaternion_xyzw: expected non-zero quaternions")
    x, y, z, w = (quaternion_xyzw / norm).unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion (x, y, z, w) with w >= 0."""
    check_tensor("rotation", rotation, (..., 3, 3))
    m = rotation
    # Shepperd's method: pick the largest diagonal term for numerical stability.
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack([
        torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], 1 + trace], -1),
        torch.stack([1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
        torch.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                     m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], m[..., 1, 0] - m[..., 0, 1]], -1),
    ], -2)
    diag = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., 3:4] < 0, -q, q)


def vigor_heading_to_yaw(heading_deg: torch.Tensor | float) -> torch.Tensor | float:
    """VIGOR / compass heading (degrees, 0 = north, clockwise) -> ENU yaw (radians, CCW from east)."""
    if isinstance(heading_deg, torch.Tensor):
        return wrap_angle(math.pi / 2 - torch.deg2rad(heading_deg))
    return wrap_angle(math.pi / 2 - math.radians(heading_deg))


def yaw_to_vigor_heading(yaw: torch.Tensor | float) -> torch.Tensor | float:
    """ENU yaw (radians) -> compass heading in degrees in [0, 360), 0 = north, clockwise."""
    if isinstance(yaw, torch.Tensor):
        return torch.remainder(torch.rad2deg(math.pi / 2 - yaw), 360.0)
    return math.degrees(math.pi / 2 - yaw) % 360.0
