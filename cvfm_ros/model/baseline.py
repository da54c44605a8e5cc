"""Classical baseline: flat-ground BEV of the ground image + NCC search over translation and yaw.

For every yaw hypothesis (the prior yaw +- `yaw_range_deg` in steps of `yaw_step_deg`), the ground
image is projected onto the ground plane (z = 0 of `base_link`; the camera height comes from the
extrinsics) into a north-up template of `template_px` x `template_px` pixels at the aerial
resolution, centred on the camera. OpenCV's masked normalised cross-correlation
(`matchTemplate`, TM_CCOEFF_NORMED, mask = ground points the camera sees) slides it over the
aerial patch. The best (yaw, position) is refined below the pixel and the step by parabola fits.
The covariance comes from the shape of the NCC peak: the second moments of (x, y, yaw) under
weights exp((ncc - ncc_max) / peak_temperature) over the whole search volume, plus the
quantisation floor, so a flat or multi-modal score surface gives a large covariance.

Same interface as `ViewBridgeMatcher` (batch dict in, dict out, `set_camera`). Its "matches" are
the pose-implied correspondences of a grid of seen template points (the method has no
independent matches); `surface_height` is zero (the flat-ground assumption).

Convention: CONVENTIONS.md; pose (x, y, yaw) of `base_link` in the aerial patch frame (origin at
the patch centre, x east, y north, yaw CCW from east).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from cvfm_ros.geometry import (MetricGrid, MountedCamera, check_tensor, effective_count, rotation_2d, sample_image,
                               wrap_angle)
from .lifting import bev_points_in_base
from .pose import aerial_metric_to_pixels, aerial_pixels_to_metric

_GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class BaselineConfig:
    ground_hw: tuple[int, int] = (128, 256)
    aerial_hw: tuple[int, int] = (128, 128)
    template_px: int = 64  # side of the BEV template in aerial pixels (< the aerial patch side)
    yaw_range_deg: float = 10.0  # search prior +- this; >= 180 searches the full circle
    yaw_step_deg: float = 1.0
    blur_sigma_px: float = 1.0  # Gaussian smoothing of both images before NCC (0 = none)
    min_seen_fraction: float = 0.05  # templates seeing less of the ground are not searched
    peak_temperature: float = 0.02  # NCC units; sets the covariance from the peak shape
    min_ncc: float = 0.25  # best NCC below this -> valid False
    num_matches: int = 64

    def __post_init__(self) -> None:
        if min(self.ground_hw) <= 0 or min(self.aerial_hw) <= 0:
            raise ValueError("BaselineConfig: ground_hw and aerial_hw must be positive")
        if not 3 <= self.template_px < min(self.aerial_hw):
            raise ValueError(f"BaselineConfig.template_px: expected 3 <= template_px < {min(self.aerial_hw)}, "
                             f"got {self.template_px}")
        if not (self.yaw_step_deg > 0 and self.yaw_range_deg >= 0 and self.peak_temperature > 0):
            raise ValueError("BaselineConfig: need yaw_step_deg > 0, yaw_range_deg >= 0, peak_temperature > 0")
        if self.num_matches < 1:
            raise ValueError("BaselineConfig.num_matches: expected >= 1")

    def yaw_offsets(self) -> np.ndarray:
        """(J,) yaw offsets from the prior in radians."""
        if self.yaw_range_deg >= 180.0:
            n = max(1, int(round(360.0 / self.yaw_step_deg)))
            return np.deg2rad(np.arange(n) * 360.0 / n - 180.0)
        n = int(math.floor(self.yaw_range_deg / self.yaw_step_deg + 1e-9))
        return np.deg2rad(np.arange(-n, n + 1) * self.yaw_step_deg)


def _parabola_peak(left: float, centre: float, right: float) -> float:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through (-1, l), (0, c), (1, r)."""
    denom = left - 2.0 * centre + right
    if not np.isfinite(denom) or denom >= -1e-12:
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def _pad_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """(n, ...) -> (k, ...) with zero rows appended (n <= k)."""
    return torch.cat([x, x.new_zeros(k - x.shape[0], *x.shape[1:])])


class ClassicalBaseline(nn.Module):
    """NCC template search; see the module docstring. Has no trainable parameters."""

    # It searches yaw itself (`yaw_range_deg`), and its uniform match weights say nothing about
    # which yaw hypothesis is right, so the localizer's yaw hypotheses do not apply to it.
    yaw_search: bool = False

    def __init__(self, config: BaselineConfig | None = None, camera: MountedCamera | None = None) -> None:
        super().__init__()
        self.config = config or BaselineConfig()
        self.camera: MountedCamera | None = None
        if camera is not None:
            self.set_camera(camera)

    def set_camera(self, camera: MountedCamera) -> None:
        """Set the default ground camera (a batch's "camera" entry overrides it per call)."""
        self.camera = self.check_camera(camera)

    def check_camera(self, camera: MountedCamera) -> MountedCamera:
        if not isinstance(camera, MountedCamera):
            raise ValueError(f"camera: expected a MountedCamera, got {type(camera).__name__}")
        if (camera.camera.height, camera.camera.width) != tuple(self.config.ground_hw):
            raise ValueError(f"camera: image size {camera.camera.height}x{camera.camera.width} does not match "
                             f"ground_hw {self.config.ground_hw}")
        if camera.height_m <= 0:
            raise ValueError(f"camera: must be above the ground plane (height {camera.height_m} m)")
        return camera

    def _templates(self, gray: torch.Tensor, yaws: torch.Tensor, mpp: float,
                   camera: MountedCamera) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Ground gray image (1, 1, Hg, Wg), yaws (J,) -> templates, masks (J, T, T) float32 and the
        template cell centres (T*T, 2) in the BEV frame."""
        t = self.config.template_px
        cells = MetricGrid(t, t, mpp).cell_centres(torch.float64).reshape(-1, 2)
        base = bev_points_in_base(cells, yaws.double())  # (J, T*T, 2)
        pts = torch.cat([base, torch.zeros_like(base[..., :1])], -1)
        pixels, seen = camera.project_base_points(pts)
        vals = sample_image(gray.double().expand(len(yaws), -1, -1, -1), pixels)[:, 0]
        templates = vals.reshape(-1, t, t).float().numpy()
        masks = seen.reshape(-1, t, t).float().numpy()
        return templates, masks, cells

    def _smooth(self, image: np.ndarray) -> np.ndarray:
        s = self.config.blur_sigma_px
        return cv2.GaussianBlur(image, (0, 0), s) if s > 0 else image

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Raise ValueError naming the first bad entry of `batch`."""
        if batch.get("camera") is not None:
            self.check_camera(batch["camera"])
        elif self.camera is None:
            raise ValueError("camera: none in the batch and none set (pass it to the constructor or call set_camera)")
        for key in ("ground", "aerial", "aerial_mpp", "prior_yaw"):
            if key not in batch:
                raise ValueError(f"batch: missing key {key!r}")
        sizes: dict[str, int] = {}
        for key, hw in (("ground", self.config.ground_hw), ("aerial", self.config.aerial_hw)):
            img = check_tensor(key, batch[key], ("B", 3, hw[0], hw[1]), sizes)
            if not torch.isfinite(img).all():
                raise ValueError(f"{key}: expected finite values, found NaN or inf")
            if img.min() < -1e-3 or img.max() > 1 + 1e-3:
                raise ValueError(f"{key}: expected values in [0, 1]")
        yaw = check_tensor("prior_yaw", batch["prior_yaw"], (sizes["B"],))
        if not torch.isfinite(yaw).all():
            raise ValueError("prior_yaw: expected finite values, found NaN or inf")
        mpp = torch.as_tensor(batch["aerial_mpp"], dtype=torch.float64).reshape(-1)
        if mpp.numel() not in (1, sizes["B"]) or not (torch.isfinite(mpp).all() and (mpp > 0).all()):
            raise ValueError(f"aerial_mpp: expected a positive float or ({sizes['B']},) tensor")

    @torch.no_grad()
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        camera = batch.get("camera") or self.camera
        cfg = self.config
        ground, aerial = batch["ground"].detach().cpu(), batch["aerial"].detach().cpu()
        b = ground.shape[0]
        mpp_all = torch.as_tensor(batch["aerial_mpp"], dtype=torch.float64).reshape(-1).expand(b)
        gray_w = torch.tensor(_GRAY, dtype=ground.dtype).view(1, 3, 1, 1)
        offsets = cfg.yaw_offsets()
        t = cfg.template_px
        k = cfg.num_matches
        res = {key: [] for key in ("pose", "covariance", "valid", "matches_bev_xy", "matches_aerial_uv",
                                   "matches_ground_uv", "match_weights", "ncc", "best_ncc")}
        for i in range(b):
            mpp = float(mpp_all[i])
            prior = float(batch["prior_yaw"][i])
            yaws = torch.tensor(prior + offsets, dtype=torch.float64)
            g = (ground[i:i + 1] * gray_w).sum(1, keepdim=True)
            a = self._smooth((aerial[i] * gray_w[0]).sum(0).numpy().astype(np.float32))
            templates, masks, cells = self._templates(g, yaws, mpp, camera)
            ncc = np.full((len(offsets), cfg.aerial_hw[0] - t + 1, cfg.aerial_hw[1] - t + 1), -1.0, np.float32)
            for j in range(len(offsets)):
                if masks[j].mean() < cfg.min_seen_fraction:
                    continue
                r = cv2.matchTemplate(a, self._smooth(templates[j]), cv2.TM_CCOEFF_NORMED, mask=masks[j])
                ncc[j] = np.nan_to_num(r, nan=-1.0, posinf=-1.0, neginf=-1.0)
            j, v0, u0 = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
            best = float(ncc[j, v0, u0])
            du = _parabola_peak(ncc[j, v0, u0 - 1], best, ncc[j, v0, u0 + 1]) if 0 < u0 < ncc.shape[2] - 1 else 0.0
            dv = _parabola_peak(ncc[j, v0 - 1, u0], best, ncc[j, v0 + 1, u0]) if 0 < v0 < ncc.shape[1] - 1 else 0.0
            if len(offsets) >= 3:
                jl, jr = (j - 1) % len(offsets), (j + 1) % len(offsets)
                full = cfg.yaw_range_deg >= 180.0
                dj = _parabola_peak(float(ncc[jl, v0, u0]), best, float(ncc[jr, v0, u0])) \
                    if full or 0 < j < len(offsets) - 1 else 0.0
            else:
                dj = 0.0
            step = float(offsets[1] - offsets[0]) if len(offsets) > 1 else 0.0
            yaw = float(wrap_angle(prior + float(offsets[j]) + dj * step))
            centre_uv = torch.tensor([[u0 + du + (t - 1) / 2.0, v0 + dv + (t - 1) / 2.0]], dtype=torch.float64)
            xy = aerial_pixels_to_metric(centre_uv.unsqueeze(0), cfg.aerial_hw, torch.tensor([mpp], dtype=torch.float64))[0, 0]

            # Peak shape -> covariance (moments under a softmax of the NCC volume).
            w = np.exp((ncc.astype(np.float64) - best) / cfg.peak_temperature)
            w /= w.sum()
            jj, vv, uu = np.meshgrid(np.arange(ncc.shape[0]), np.arange(ncc.shape[1]), np.arange(ncc.shape[2]), indexing="ij")
            px = (uu - u0 - du) * mpp  # metric offsets from the estimate (x east, y north)
            py = -(vv - v0 - dv) * mpp
            pyaw = np.angle(np.exp(1j * (offsets[jj] - offsets[j] - dj * step)))
            d = np.stack([px.ravel(), py.ravel(), pyaw.ravel()], 0)
            cov = (d * w.ravel()) @ d.T
            cov += np.diag([mpp * mpp / 12.0, mpp * mpp / 12.0, step * step / 12.0 + 1e-8])

            # Pose-implied correspondences of evenly spaced seen template points.
            seen = np.flatnonzero(masks[j].ravel() > 0.5)
            pick = seen[np.linspace(0, len(seen) - 1, min(k, len(seen))).round().astype(int)] if len(seen) else seen
            bev = bev_points_in_base(cells[torch.as_tensor(pick, dtype=torch.long)], torch.tensor([yaw], dtype=torch.float64))[0]
            pose = torch.tensor([float(xy[0]), float(xy[1]), yaw], dtype=torch.float64)
            world = bev @ rotation_2d(pose[2]).T + pose[:2]
            aer_uv = aerial_metric_to_pixels(world.unsqueeze(0), cfg.aerial_hw, torch.tensor([mpp], dtype=torch.float64))[0]
            gnd_uv, ok = camera.project_base_points(torch.cat([bev, torch.zeros_like(bev[:, :1])], -1))
            n = len(pick)
            weights = torch.cat([ok.double() / max(n, 1), torch.zeros(k - n, dtype=torch.float64)])
            valid = best >= cfg.min_ncc and n >= 3
            if not valid:
                cov = np.eye(3) * 1e6
            res["pose"].append(pose)
            res["covariance"].append(torch.as_tensor(cov))
            res["valid"].append(torch.tensor(valid))
            res["matches_bev_xy"].append(_pad_rows(bev, k))
            res["matches_aerial_uv"].append(_pad_rows(aer_uv, k))
            res["matches_ground_uv"].append(_pad_rows(gnd_uv, k))
            res["match_weights"].append(weights)
            res["ncc"].append(torch.from_numpy(ncc))
            res["best_ncc"].append(torch.tensor(best, dtype=torch.float64))
        out = {key: torch.stack(vals).to(torch.bool if key == "valid" else torch.float32) for key, vals in res.items()}
        out["surface_height"] = torch.zeros(b, t, t)
        # one camera: every match is seen in camera 0 (-1 where the template point is unseen)
        seen = out["match_weights"] > 0
        out["matches_ground_camera"] = torch.where(seen, torch.zeros_like(seen, dtype=torch.int64), -1)
        # the localizer's output contract; the baseline searches yaw itself and is never ranked by it
        out["effective_inliers"] = effective_count(out["match_weights"])
        return out
