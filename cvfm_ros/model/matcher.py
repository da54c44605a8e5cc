"""ViewBridgeMatcher: ground image + aerial patch -> pixel-level correspondences and 3-DoF pose.

Pipeline (docs/MODEL.md): extract ground and aerial features -> lift the ground features to a
metric BEV grid around the camera over height bins -> Surface Model (mask what lies above the
visible surface, pool, surface height) -> descriptor heads -> similarity S -> SimRefiner ->
dual-softmax with dustbin -> top-k mutual matches with sub-cell refinement -> weighted Procrustes.

Batch (dict): `ground` (B, 3, Hg, Wg) float in [0, 1]; `aerial` (B, 3, Ha, Wa) float in [0, 1],
north-up; `aerial_mpp` float or (B,) metres per aerial pixel; `prior_yaw` (B,) radians, the yaw of
`base_link` in `map` under the prior; optional `camera`, the MountedCamera of the ground images
(one per batch; immutable): passed per call, else the default given at construction or by
`set_camera`. Backends and evaluation pass it per call, so one matcher serves several cameras.
A CameraRig of R cameras is lifted into one BEV: `ground` is then (B, R, 3, Hg, Wg), image i of
camera i (docs/MODEL.md, "Camera rigs"). Optional `bev_memory`: the BEVs of past frames with their
odometry poses relative to this frame (model/sequential.py), fused with this frame's BEV before
matching (sequential BEV); the pose stays this frame's.

Output (dict of tensors): `pose` (B, 3) (x, y, yaw) of `base_link` in the aerial patch frame
(origin at the patch centre, x east, y north, yaw CCW from east); `covariance` (B, 3, 3);
`valid` (B,) bool; `matches_bev_xy` (B, K, 2) metres in `base_link`'s planar frame;
`matches_aerial_uv` (B, K, 2) aerial pixels (OpenCV); `matches_ground_uv` (B, K, 2) ground pixels
of the match's BEV point at its surface height ((-1, -1) where the camera does not see it; for a rig,
in the first camera that sees it); `matches_ground_camera` (B, K) int64, that camera's index (0 for
a single camera, -1 where unseen);
`match_weights` (B, K) (0 = padding); `surface_height` (B, Hb, Wb) metres above ground (the
expected height under the height softmax when the Surface Model is off); and for the losses:
`similarity`, `similarity_refined` (B, N, M), `log_assign_row` (B, N, M+1), `log_assign_col`
(B, N+1, M), `match_prob` (B, N, M), `bev_valid` (B, Hb, Wb), `height_weights` (B, K_h, Hb, Wb),
`bev_yaw` (B,), `aerial_mpp` (B,), `pose_solvable` (B,) (the Procrustes is well-posed, whatever
the confidence), `residual_rms` (B,), `effective_matches` (B,), `effective_inliers` (B,) (effective
matches times the share of match weight the robust solve kept; ranks yaw hypotheses). This frame's
own BEV, what a later frame's `bev_memory` holds: `frame_bev_features` (B, C, Hb, Wb) (descriptor
head input before fusion), `frame_bev_valid` (B, Hb, Wb) float, `frame_surface_height` (B, Hb, Wb);
`bev_valid` and `surface_height` are the fused ones.
N = Hb*Wb BEV cells, M = aerial feature cells, both row-major.

Convention: CONVENTIONS.md (ENU, yaw CCW from east, OpenCV pixel centres, panorama layout).
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cvfm_ros.geometry import CameraRig, MetricGrid, MountedCamera, check_tensor
from .extractor import ExtractorConfig, build_extractor
from .lifting import BEVLifter, LiftingConfig, bev_points_in_base
from .matching import BEVContext, DescriptorHead, MatchingConfig, SimilarityMatcher
from .sequential import DEFAULT_MIN_WEIGHT, check_memory, fuse_bev
from .pose import (PoseSolverConfig, aerial_pixels_to_metric, refine_subcell, select_matches, solve_pose,
                   window_table)
from .simrefiner import SimRefiner, SimRefinerConfig
from .surface import SurfaceModel, SurfaceModelConfig, height_pool


DEFAULT_AERIAL_MPP = 0.4  # the one default aerial resolution (metres per pixel)


@dataclass(frozen=True)
class MatcherConfig:
    """Whole-matcher configuration; sizes are fixed (static shapes for ONNX)."""

    ground_hw: tuple[int, int] = (128, 256)  # ground image (H, W); must equal the camera's size
    aerial_hw: tuple[int, int] = (128, 128)  # aerial patch (H, W)
    # Metres per aerial input pixel the matcher is trained and run at (128 px at 0.4 m = 51.2 m
    # around the prior); a released file's runtime metadata repeats the training data's value.
    aerial_mpp: float = DEFAULT_AERIAL_MPP
    ground_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    aerial_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    lifting: LiftingConfig = field(default_factory=LiftingConfig)
    surface: SurfaceModelConfig = field(default_factory=SurfaceModelConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    simrefiner: SimRefinerConfig = field(default_factory=SimRefinerConfig)
    pose: PoseSolverConfig = field(default_factory=PoseSolverConfig)
    use_surface_model: bool = True  # ablation: False = FG2 pooling over all heights
    use_simrefiner: bool = True  # ablation: False = raw similarity into the dual softmax
    use_prior_yaw: bool = True  # False = orientation unknown: the BEV is built at yaw 0 of base_link

    def __post_init__(self) -> None:
        if not (math.isfinite(self.aerial_mpp) and self.aerial_mpp > 0):
            raise ValueError(f"MatcherConfig.aerial_mpp: expected positive metres per pixel, got {self.aerial_mpp}")
        for name in ("ground_hw", "aerial_hw"):
            hw = getattr(self, name)
            if len(hw) != 2 or min(hw) <= 0:
                raise ValueError(f"MatcherConfig.{name}: expected (H, W) positive, got {hw}")
        n = self.lifting.bev_cells ** 2
        if self.pose.num_matches > n:
            raise ValueError(f"MatcherConfig.pose.num_matches: {self.pose.num_matches} exceeds the {n} BEV cells")


def _as_batch_vector(name: str, value: Any, b: int, like: torch.Tensor) -> torch.Tensor:
    """A float or a (B,) / scalar tensor -> (B,) tensor on `like`'s device and dtype."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.full((b,), float(value), dtype=like.dtype, device=like.device)
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.to(like).expand(b)
    if isinstance(value, torch.Tensor):
        check_tensor(name, value, (b,))
        return value.to(like)
    raise ValueError(f"{name}: expected a float or a tensor of shape ({b},), got {type(value).__name__}")


class ViewBridgeMatcher(nn.Module):
    """Ground-aerial matcher with a closed-form pose; see the module docstring for the interface."""

    def __init__(self, config: MatcherConfig | None = None, camera: MountedCamera | None = None) -> None:
        super().__init__()
        config = config or MatcherConfig()
        self.config = config
        self.ground_extractor = build_extractor(config.ground_extractor)
        self.aerial_extractor = build_extractor(config.aerial_extractor)
        for name, module, hw in (("ground", self.ground_extractor, config.ground_hw),
                                 ("aerial", self.aerial_extractor, config.aerial_hw)):
            multiple = int(getattr(module, "input_multiple", module.stride))
            if hw[0] % multiple or hw[1] % multiple:
                raise ValueError(f"MatcherConfig.{name}_hw: {hw} must be multiples of {multiple} for this extractor")
        self.ground_feature_hw = (config.ground_hw[0] // self.ground_extractor.stride,
                                  config.ground_hw[1] // self.ground_extractor.stride)
        self.aerial_feature_hw = (config.aerial_hw[0] // self.aerial_extractor.stride,
                                  config.aerial_hw[1] // self.aerial_extractor.stride)
        self.lifter = BEVLifter(config.lifting, self.ground_extractor.out_channels)
        self.surface_model = SurfaceModel(config.surface, config.lifting.heights()) if config.use_surface_model else None
        bev_in = self.bev_input_channels
        mc = config.matching
        self.bev_context = BEVContext(bev_in, mc.bev_context_channels, mc.groups) if mc.bev_context_channels else None
        head_in = mc.bev_context_channels if self.bev_context is not None else bev_in
        self.bev_head = DescriptorHead(head_in, mc.head_hidden, mc.descriptor_dim)
        self.aerial_head = DescriptorHead(self.aerial_extractor.out_channels, mc.head_hidden, mc.descriptor_dim)
        self.assigner = SimilarityMatcher(mc)
        bev_hw = (config.lifting.bev_cells, config.lifting.bev_cells)
        self.simrefiner = SimRefiner(config.simrefiner, bev_hw, self.aerial_feature_hw) if config.use_simrefiner else None

        ha, wa = self.aerial_feature_hw
        sa = self.aerial_extractor.stride
        v, u = torch.meshgrid(torch.arange(ha, dtype=torch.float32), torch.arange(wa, dtype=torch.float32), indexing="ij")
        # Aerial pixel (OpenCV) at the centre of every feature cell.
        self.register_buffer("aerial_cell_uv", torch.stack([u, v], -1).reshape(-1, 2) * sa + (sa - 1) / 2,
                             persistent=False)
        table, inside = window_table(self.aerial_feature_hw, config.pose.subcell_window)
        self.register_buffer("window_index", table, persistent=False)
        self.register_buffer("window_inside", inside, persistent=False)
        self.camera: MountedCamera | None = None
        if camera is not None:
            self.set_camera(camera)

    # ---- geometry shared with the losses and the training scripts -------------------------
    @property
    def bev_grid(self) -> MetricGrid:
        """The BEV grid (centred on base_link, axes rotated by `bev_yaw`)."""
        return self.lifter.grid

    @property
    def bev_cell_xy(self) -> torch.Tensor:
        """(N, 2) BEV cell centres in the BEV frame, row-major."""
        return self.lifter.cell_xy

    @property
    def heights(self) -> torch.Tensor:
        return self.lifter.heights

    def set_camera(self, camera: MountedCamera | CameraRig) -> None:
        """Set the default ground camera (a batch's "camera" entry overrides it per call)."""
        self.camera = self.check_camera(camera)

    def check_camera(self, camera: MountedCamera | CameraRig) -> MountedCamera | CameraRig:
        """`camera` if it matches `ground_hw` and sees some BEV cell (each camera of a rig);
        ValueError otherwise."""
        if isinstance(camera, CameraRig):
            for i, mounted in enumerate(camera.cameras):
                try:
                    self.check_camera(mounted)
                except ValueError as err:
                    raise ValueError(f"rig camera {i} ({camera.names[i] if camera.names else i}): {err}") from None
            return camera
        if not isinstance(camera, MountedCamera):
            raise ValueError(f"camera: expected a MountedCamera or CameraRig, got {type(camera).__name__}")
        cam = camera.camera
        if (cam.height, cam.width) != tuple(self.config.ground_hw):
            raise ValueError(f"camera: image size {cam.height}x{cam.width} (HxW) does not match the matcher's "
                             f"ground_hw {self.config.ground_hw[0]}x{self.config.ground_hw[1]}")
        with torch.no_grad():
            pts = self.lifter.points_in_base(torch.zeros(1))
            _, valid = camera.project_base_points(pts.float())
        if not bool(valid.any()):
            raise ValueError("camera: sees no BEV cell at any height bin (check the extrinsics, the BEV size "
                             "and the height bins)")
        return camera

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Raise ValueError naming the first bad entry of `batch` (shapes, ranges, NaN, camera)."""
        if not isinstance(batch, dict):
            raise ValueError(f"batch: expected a dict, got {type(batch).__name__}")
        for key in ("ground", "aerial", "aerial_mpp", "prior_yaw"):
            if key not in batch:
                raise ValueError(f"batch: missing key {key!r}")
        if batch.get("camera") is not None:
            self.check_camera(batch["camera"])
        elif self.camera is None:
            raise ValueError("camera: none in the batch and none set (pass it to the constructor or call set_camera)")
        camera = batch.get("camera") or self.camera
        sizes: dict[str, int] = {}
        hg, wg = self.config.ground_hw
        ha, wa = self.config.aerial_hw
        for key, (h, w) in (("ground", (hg, wg)), ("aerial", (ha, wa))):
            shape = ("B", len(camera), 3, h, w) if key == "ground" and isinstance(camera, CameraRig) else ("B", 3, h, w)
            img = check_tensor(key, batch[key], shape, sizes)
            if not torch.isfinite(img).all():
                raise ValueError(f"{key}: expected finite values, found NaN or inf")
            if img.numel() and (img.min() < -1e-3 or img.max() > 1 + 1e-3):
                raise ValueError(f"{key}: expected values in [0, 1], got [{float(img.min()):.3g}, {float(img.max()):.3g}]")
        b = sizes["B"]
        mpp = _as_batch_vector("aerial_mpp", batch["aerial_mpp"], b, batch["aerial"])
        if not (torch.isfinite(mpp).all() and (mpp > 0).all()):
            raise ValueError("aerial_mpp: expected positive finite metres per pixel")
        yaw = check_tensor("prior_yaw", batch["prior_yaw"], (b,))
        if not torch.isfinite(yaw).all():
            raise ValueError("prior_yaw: expected finite values, found NaN or inf")
        if batch.get("bev_memory") is not None:
            check_memory(batch["bev_memory"], b, self.bev_input_channels, (self.config.lifting.bev_cells,) * 2)

    @property
    def bev_input_channels(self) -> int:
        """Channels of the BEV the descriptor head reads (and a BEV memory holds): pooled features,
        visibility (and the surface height fed back with the Surface Model)."""
        return self.ground_extractor.out_channels + 1 + (1 if self.surface_model is not None else 0)

    def lift_frame(self, ground: torch.Tensor, camera: MountedCamera | CameraRig,
                   bev_yaw: torch.Tensor) -> dict[str, torch.Tensor]:
        """One frame's BEV: `features` (B, C, N) what the descriptor head reads (pooled features,
        visibility, surface height), `valid` (B, N) bool, `surface_height` (B, N),
        `height_weights` (B, K, N) and, with the Surface Model, `surface_mask` (B, K, N)."""
        cfg = self.config
        if isinstance(camera, CameraRig):  # one extractor pass over every camera's image
            ground_feat = self.ground_extractor(ground.flatten(0, 1))
            ground_feat = ground_feat.view(ground.shape[0], ground.shape[1], *ground_feat.shape[1:])
        else:
            ground_feat = self.ground_extractor(ground)
        lifted = self.lifter(ground_feat, cfg.ground_hw, camera, bev_yaw)
        weights, bev_valid = lifted["height_weights"], lifted["bev_valid"]
        visible = bev_valid.to(ground.dtype).unsqueeze(1)  # (B, 1, N)
        out = {"valid": bev_valid, "height_weights": weights}
        if self.surface_model is not None:
            surf = self.surface_model(lifted["volume"], weights)
            lo, hi = cfg.lifting.height_min_m, cfg.lifting.height_max_m
            h_channel = ((surf["surface_height"] - lo) / max(hi - lo, 1e-6)).unsqueeze(1)
            out.update(features=torch.cat([surf["features"], visible, h_channel * visible], 1),
                       surface_height=surf["surface_height"], surface_mask=surf["surface_mask"])
        else:
            out.update(features=torch.cat([height_pool(lifted["volume"], weights), visible], 1),
                       surface_height=(weights * self.heights.to(weights).view(1, -1, 1)).sum(1))
        return out

    # ---- forward --------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            self.check_batch(batch)
        # The ground camera of this call: immutable, passed with the batch (backends hold their
        # own), else the default one.
        camera = batch.get("camera") or self.camera
        assert camera is not None
        cfg = self.config
        ground, aerial = batch["ground"], batch["aerial"]
        b = ground.shape[0]
        mpp = _as_batch_vector("aerial_mpp", batch["aerial_mpp"], b, aerial)
        prior_yaw = batch["prior_yaw"].to(ground)
        bev_yaw = prior_yaw if cfg.use_prior_yaw else torch.zeros_like(prior_yaw)
        hb = wb = cfg.lifting.bev_cells

        frame = self.lift_frame(ground, camera, bev_yaw)
        aerial_feat = self.aerial_extractor(aerial)
        out: dict[str, torch.Tensor] = {
            "frame_bev_features": frame["features"].reshape(b, -1, hb, wb),
            "frame_bev_valid": frame["valid"].to(ground.dtype).reshape(b, hb, wb),
            "frame_surface_height": frame["surface_height"].reshape(b, hb, wb)}
        if "surface_mask" in frame:
            out["surface_mask"] = frame["surface_mask"].reshape(b, -1, hb, wb)
        bev_in, bev_valid, surface_height, weights = frame["features"], frame["valid"], frame["surface_height"], \
            frame["height_weights"]
        memory = batch.get("bev_memory")
        from_memory = torch.zeros_like(bev_valid)
        if memory is not None:  # sequential BEV: past frames warped in by odometry
            fused = fuse_bev(bev_in, bev_valid, surface_height, memory, self.bev_cell_xy, bev_yaw, self.bev_grid,
                             DEFAULT_MIN_WEIGHT)
            bev_in, bev_valid = fused["features"], fused["valid"]
            surface_height, from_memory = fused["surface_height"], fused["from_memory"]
        bev_in = bev_in.reshape(b, -1, hb, wb)
        if self.bev_context is not None:
            bev_in = self.bev_context(bev_in)
        bev_desc = self.bev_head(bev_in)
        aerial_desc = self.aerial_head(aerial_feat)

        similarity = self.assigner.similarity(bev_desc, aerial_desc)
        refined = self.simrefiner(similarity)["refined"] if self.simrefiner is not None else similarity
        assign = self.assigner.assign(refined, bev_valid)

        # Correspondences and pose.
        mutual = cfg.pose.train_require_mutual if self.training else cfg.pose.require_mutual
        sel = select_matches(assign["match_prob"], bev_valid, cfg.pose.num_matches, mutual)
        m = similarity.shape[2]
        row_prob = assign["log_assign_row"][:, :, :m].exp()
        aerial_uv = refine_subcell(row_prob, sel["bev_index"], sel["aerial_index"], self.aerial_cell_uv.to(row_prob),
                                   self.window_index, self.window_inside)
        aerial_xy = aerial_pixels_to_metric(aerial_uv, cfg.aerial_hw, mpp)
        all_bev_xy = bev_points_in_base(self.bev_cell_xy, bev_yaw)  # (B, N, 2)
        idx2 = sel["bev_index"].unsqueeze(-1).expand(-1, -1, 2)
        bev_xy = torch.gather(all_bev_xy, 1, idx2)
        match_h = torch.gather(surface_height, 1, sel["bev_index"])
        match_points = torch.cat([bev_xy, match_h.unsqueeze(-1)], -1)
        if isinstance(camera, CameraRig):
            ground_uv, ground_camera, ground_ok = camera.first_view(match_points)
        else:
            ground_uv, ground_ok = camera.project_base_points(match_points)
            ground_camera = torch.where(ground_ok, torch.zeros_like(ground_ok, dtype=torch.int64), -1)
        # A match must be seen: in this frame's image at its surface height, or in the memory.
        seen = ground_ok | torch.gather(from_memory, 1, sel["bev_index"])
        match_weights = sel["weights"] * seen.to(sel["weights"].dtype)
        # Unseen points project to meaningless (possibly huge) pixels: mark them (-1, -1) instead.
        ground_uv = torch.where(ground_ok.unsqueeze(-1), ground_uv, torch.full_like(ground_uv, -1.0))
        cell_m = mpp * self.aerial_extractor.stride
        solved = solve_pose(bev_xy, aerial_xy, match_weights, cfg.pose, cell_m,
                            cfg.pose.train_robust_iterations if self.training else cfg.pose.robust_iterations,
                            cfg.pose.gate_for(gate_kind(camera, memory is not None)))

        out.update({
            "pose": solved["pose"],
            "covariance": solved["covariance"],
            "valid": solved["valid"],
            "matches_bev_xy": bev_xy,
            "matches_aerial_uv": aerial_uv,
            "matches_ground_uv": ground_uv,
            "matches_ground_camera": ground_camera,
            "match_weights": match_weights,
            "matches_bev_index": sel["bev_index"],
            "matches_aerial_index": sel["aerial_index"],
            "surface_height": surface_height.reshape(b, hb, wb),
            "bev_valid": bev_valid.reshape(b, hb, wb),
            "height_weights": weights.reshape(b, -1, hb, wb),
            "similarity": similarity,
            "similarity_refined": refined,
            "log_assign_row": assign["log_assign_row"],
            "log_assign_col": assign["log_assign_col"],
            "match_prob": assign["match_prob"],
            "bev_yaw": bev_yaw,
            "aerial_mpp": mpp,
            "pose_solvable": solved["solvable"],
            "residual_rms": solved["residual_rms"],
            "effective_matches": solved["effective_matches"],
            "effective_inliers": solved["effective_inliers"],
        })
        return out

    def solve_matches(self, matches_bev_xy: torch.Tensor, matches_aerial_uv: torch.Tensor, match_weights: torch.Tensor,
                      aerial_mpp: float, min_effective_inliers: float) -> dict[str, torch.Tensor]:
        """The pose solve of `forward` again, from its match outputs and with another validity gate
        (`min_effective_inliers`): how the localizer's second look (runtime/localizer.py) judges a
        frame the calibrated gate refused, without a second copy of the solve. Inputs as `forward`
        returns them (B, K, 2), (B, K, 2) aerial pixels, (B, K); returns `solve_pose`'s dict (pose in
        the aerial patch frame)."""
        bev_xy, aerial_uv, weights = (torch.as_tensor(t, dtype=torch.float32)
                                      for t in (matches_bev_xy, matches_aerial_uv, match_weights))
        mpp = torch.full((bev_xy.shape[0],), float(aerial_mpp))
        aerial_xy = aerial_pixels_to_metric(aerial_uv, self.config.aerial_hw, mpp)
        cell_m = mpp * self.aerial_extractor.stride
        with torch.inference_mode():
            return solve_pose(bev_xy, aerial_xy, weights, self.config.pose, cell_m, self.config.pose.robust_iterations,
                              float(min_effective_inliers))


def camera_kind(camera: MountedCamera | CameraRig) -> str:
    """"rig", or the camera model's kind ("panorama", "pinhole"): what a validity gate is for."""
    return "rig" if isinstance(camera, CameraRig) else camera.camera.kind


def gate_kind(camera: MountedCamera | CameraRig, with_memory: bool) -> str:
    """The validity gate (pose.CAMERA_KINDS) a frame of `camera` is held to: "sequential" for a
    single pinhole with a BEV memory, else its camera kind. A panorama or rig sees (nearly) all
    around, so its memory fills (almost) no cell and its own gate, calibrated on what it sees,
    holds; the sequential gate was calibrated on single pinholes with memory and is looser than a
    rig's (replaying a rig drive with memory on let fixes through that the rig gate refuses)."""
    kind = camera_kind(camera)
    return "sequential" if with_memory and kind == "pinhole" else kind


def validity_gate(matcher: nn.Module, camera: MountedCamera | CameraRig, with_memory: bool) -> tuple[str, float] | None:
    """(gate kind, min effective inliers) a frame of `camera` is held to in `matcher`'s graph, or
    None for a matcher without such a gate (the classical baseline)."""
    pose = getattr(getattr(matcher, "config", None), "pose", None)
    if pose is None or not hasattr(pose, "gate_for"):
        return None
    kind = gate_kind(camera, with_memory)
    return kind, pose.gate_for(kind)


def count_parameters(module: nn.Module) -> dict[str, int]:
    """Trainable parameter count per top-level child and in total."""
    counts = {name: sum(p.numel() for p in child.parameters() if p.requires_grad)
              for name, child in module.named_children()}
    counts["total"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return counts
