"""Training pairs from a dataset folder: our CVFM-format pairs, VIGOR or KITTI cross-view.

Every source yields items in the matcher's input shapes and frames (see `TrainingPairs` in
training.py for the synthetic one): the aerial image is re-sampled to a `coverage_m` square
centred on the prior (the patch frame of docs/MODEL.md: x east, y north, origin at the patch
centre), the ground image is resized to `ground_hw` and its camera scaled with it.

- CVFM format (`index.json` with format "cvfm_ros-pairs"): the stored patch is already centred
  on the prior; pixel-level correspondences and, when stored on the matcher's own BEV grid, the
  true surface heights are kept as targets.
- VIGOR (a folder with `splits__corrected/` or `splits/` and city folders): the positive aerial
  image is centred on the prior (VIGOR's protocol); the panorama is rolled to a random heading
  so that every yaw is seen. Pose-derived correspondences only.
- KITTI cross-view (`raw_data/` and `satmap/`): the satellite image is centred on the truth,
  so the prior is drawn uniformly within `max_offset_frac` of the half-coverage. Pose-derived
  correspondences only.

A batch must share one camera (the matcher lifts with one camera per batch): items carry their
camera as tensors and `CameraGroupedBatchSampler` forms batches from items with the same camera
key (the model and intrinsics, the mounting height to the centimetre).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..geometry import SE3, CameraRig, MountedCamera, PanoramaCamera, PinholeCamera
from ..maps.aerial_image import aerial_crop

CAMERA_PANORAMA, CAMERA_PINHOLE = 0, 1


def camera_tensors(mounted: MountedCamera | CameraRig) -> dict[str, torch.Tensor]:
    """A mounted camera as collatable tensors (model, intrinsics fx fy cx cy, base_from_camera);
    a rig's cameras stacked on a leading camera axis."""
    if isinstance(mounted, CameraRig):
        rows = [camera_tensors(c) for c in mounted.cameras]
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    cam = mounted.camera
    kind = CAMERA_PINHOLE if isinstance(cam, PinholeCamera) else CAMERA_PANORAMA
    intr = [cam.fx, cam.fy, cam.cx, cam.cy] if kind == CAMERA_PINHOLE else [0.0, 0.0, 0.0, 0.0]
    return {"camera_model": torch.tensor(kind), "camera_intrinsics": torch.tensor(intr, dtype=torch.float64),
            "base_from_camera": mounted.base_from_camera.matrix().to(torch.float64),
            "camera_height": torch.tensor(mounted.height_m, dtype=torch.float32)}


def camera_from_batch(batch: dict[str, torch.Tensor], width: int, height: int,
                      item: int = 0) -> MountedCamera | CameraRig:
    """The MountedCamera (CameraRig) of item `item` of a collated batch (inverse of `camera_tensors`)."""
    if batch["camera_model"][item].dim() == 1:  # a rig: one entry per camera
        return CameraRig(tuple(camera_from_batch({k: batch[k][item] for k in ("camera_model", "camera_intrinsics",
                                                                              "base_from_camera")}, width, height, i)
                               for i in range(batch["camera_model"].shape[1])))
    m = batch["base_from_camera"][item].double().cpu()
    pose = SE3(m[:3, :3], m[:3, 3])
    if int(batch["camera_model"][item]) == CAMERA_PINHOLE:
        fx, fy, cx, cy = (float(v) for v in batch["camera_intrinsics"][item])
        return MountedCamera(PinholeCamera(fx, fy, cx, cy, width, height), pose)
    return MountedCamera(PanoramaCamera(width, height), pose)


def camera_key(mounted: MountedCamera) -> tuple:
    t = camera_tensors(mounted)
    # Centimetres and 1e-3 px: cameras closer than that lift to the same BEV points for our cells.
    return (int(t["camera_model"]), *np.round(t["camera_intrinsics"].numpy(), 3).tolist(),
            *np.round(t["base_from_camera"][:3].numpy().ravel(), 2).tolist())


def resize_camera(mounted: MountedCamera, width: int, height: int) -> MountedCamera:
    """`mounted.resized`, for an undistorted camera: batches carry intrinsics without distortion."""
    if isinstance(mounted.camera, PinholeCamera) and mounted.camera.is_distorted:
        raise ValueError("ground camera: distorted pinhole images must be undistorted before training")
    return mounted.resized(width, height)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8, or float already in [0, 1] -> (3, H, W) float in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
    return t / 255.0 if image.dtype == np.uint8 else t


def detect_source(root: str | Path) -> str:
    """"cvfm", "vigor" or "kitti" for a dataset folder; ValueError naming what was expected."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data.source: {root} is not a directory (expected 'synth' or a dataset folder)")
    if (root / "index.json").is_file():
        return "cvfm"
    from ..data.real.vigor import VIGOR_CITIES

    has_cities = any((root / c).is_dir() for c in VIGOR_CITIES)
    if (root / "splits__corrected").is_dir() or ((root / "splits").is_dir() and has_cities):
        return "vigor"
    if (root / "raw_data").is_dir() and (root / "satmap").is_dir():
        return "kitti"
    raise ValueError(f"data.source: {root} is neither a CVFM-format folder (index.json), VIGOR (splits__corrected/ "
                     "and city folders) nor KITTI cross-view (raw_data/ and satmap/)")


class DatasetPairs(torch.utils.data.Dataset):
    """Items for the matcher from a dataset folder (see the module docstring).

    ground_hw, aerial_px: the matcher's input shapes; coverage_m: metres the aerial input spans
    (aerial_px x the training `aerial_mpp`); split: the dataset's training split; bev_grid: the
    matcher's BEV grid (stored CVFM surface heights are used when they were made on it);
    correspondences: CVFM correspondences kept per item; prior_yaw_noise_deg and
    max_offset_frac: the prior drawn around the truth where the dataset does not store one.
    """

    def __init__(self, root: str | Path, ground_hw: tuple[int, int], aerial_px: int, coverage_m: float, *,
                 split: str = "train", bev_grid=None, correspondences: int = 1024,
                 prior_yaw_noise_deg: float = 10.0, max_offset_frac: float = 0.25, seed: int = 0) -> None:
        self.root, self.kind = Path(root), detect_source(root)
        self.ground_hw, self.aerial_px, self.coverage_m = tuple(ground_hw), int(aerial_px), float(coverage_m)
        self.bev, self.k = bev_grid, int(correspondences)
        self.yaw_noise, self.offset_frac, self.seed = float(prior_yaw_noise_deg), float(max_offset_frac), seed
        if self.kind == "cvfm":
            from ..data.synth.dataset import CVFMDataset

            self.source = CVFMDataset(self.root, split)
            # One read of each meta.json: the camera groups batches, the rest re-samples the pair.
            self.meta = [self._cvfm_meta(i) for i in range(len(self.source))]
            self.keys = [camera_key(m["camera"]) for m in self.meta]
        elif self.kind == "vigor":
            from ..data.real.vigor import VigorDataset

            self.source = VigorDataset(self.root, "same_area", split if split in ("train", "test") else "train")
            self.keys = [("vigor",)] * len(self.source)  # one panorama rig
        else:
            from ..data.real.kitti import KittiDataset

            self.source = KittiDataset(self.root, split)
            # one calibration per recording day
            self.keys = [("kitti", name.split("/")[0]) for name in self.source.names]
        if not len(self.source):
            raise ValueError(f"data.source: {self.root} has no {split!r} pairs")

    def _cvfm_meta(self, i: int) -> dict:
        """What training needs of a pair's meta.json: its camera, aerial resolution and size, BEV grid."""
        meta = json.loads((self.root / "pairs" / self.source.ids[i] / "meta.json").read_text())
        c = meta["camera"]
        m = torch.tensor(c["base_from_camera"], dtype=torch.float64)
        cam = (PinholeCamera(c["fx"], c["fy"], c["cx"], c["cy"], c["width"], c["height"]) if c["model"] == "pinhole"
               else PanoramaCamera(c["width"], c["height"]))
        b = meta.get("bev", {})
        return {"camera": MountedCamera(cam, SE3(m[:3, :3], m[:3, 3])), "mpp": float(meta["aerial"]["mpp"]),
                "size": int(meta["aerial"]["size"]), "bev": (b.get("rows"), b.get("cols"), b.get("cell_m"))}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # The batch sampler adds epoch * len(self): new random headings and priors every epoch.
        epoch, index = divmod(int(index), len(self.source))
        rng = np.random.default_rng([self.seed, epoch, index])
        hg, wg = self.ground_hw
        if self.kind == "cvfm":
            return self._cvfm_item(index, rng)
        if self.kind == "vigor":
            s = self.source.sample(index, heading_deg=float(rng.uniform(0.0, 360.0)))
            ground, mounted, aerial, mpp = s.panorama, s.camera, s.aerial, s.mpp
            truth = s.pose.data.double().numpy()
            prior_xy = np.zeros(2)  # VIGOR's positive aerial image is centred on the prior
            patch = s.patch
        else:
            s = self.source[index]
            ground, mounted, aerial, mpp, patch = s.image, s.camera, s.aerial, s.mpp, s.patch
            truth = s.pose.data.double().numpy()
            reach = self.offset_frac * self.coverage_m / 2
            prior_xy = truth[:2] + rng.uniform(-reach, reach, 2)
        centre = patch.map_to_pixel(torch.tensor(prior_xy, dtype=torch.float64)).tolist()
        crop, _ = aerial_crop(aerial, mpp, centre, self.coverage_m, self.aerial_px)
        mounted = resize_camera(mounted, wg, hg)
        ground = cv2.resize(ground, (wg, hg), interpolation=cv2.INTER_AREA)
        prior_yaw = truth[2] + math.radians(rng.uniform(-self.yaw_noise, self.yaw_noise))
        return self._item(ground, crop, mounted, truth[:2] - prior_xy, truth[2], prior_yaw,
                          np.zeros((self.k, 2), np.float32), np.zeros(self.k, bool), None)

    def _cvfm_item(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        item, meta = self.source[index], self.meta[index]
        hg, wg = self.ground_hw
        size = meta["size"]
        # CVFMDataset gives float images in [0, 1]; OpenCV re-samples them as they are.
        ground = np.ascontiguousarray(item["ground"].permute(1, 2, 0).numpy())
        aerial = np.ascontiguousarray(item["aerial"].permute(1, 2, 0).numpy())
        crop, src_to_dst = aerial_crop(aerial, meta["mpp"], ((size - 1) / 2, (size - 1) / 2), self.coverage_m,
                                       self.aerial_px)
        mounted = resize_camera(meta["camera"], wg, hg)
        ground = cv2.resize(ground, (wg, hg), interpolation=cv2.INTER_AREA)
        vis = np.flatnonzero(item["visible"].numpy())
        pick = rng.choice(vis, size=min(self.k, len(vis)), replace=False) if len(vis) else np.zeros(0, int)
        corr = np.zeros((self.k, 2), np.float32)
        valid = np.zeros(self.k, bool)
        uv = item["aerial_uv"].numpy()[pick].astype(np.float64)
        corr[: len(pick)] = uv @ src_to_dst[:, :2].T + src_to_dst[:, 2]
        valid[: len(pick)] = True
        surface = None
        if self.bev is not None and meta["bev"] == (self.bev.rows, self.bev.cols, self.bev.cell_m):
            surface = item["bev_height"]
        pose = item["pose_in_patch"].double().numpy()
        return self._item(ground, crop, mounted, pose[:2], pose[2], float(item["prior_yaw"]), corr, valid, surface)

    def _item(self, ground, aerial, mounted, xy, yaw, prior_yaw, corr, valid, surface) -> dict[str, torch.Tensor]:
        rows, cols = (self.bev.rows, self.bev.cols) if self.bev is not None else (1, 1)
        return {"ground": _to_tensor(ground), "aerial": _to_tensor(aerial),
                "aerial_mpp": torch.tensor(self.coverage_m / self.aerial_px, dtype=torch.float32),
                "prior_yaw": torch.tensor(prior_yaw, dtype=torch.float32),
                "pose": torch.tensor([xy[0], xy[1], yaw], dtype=torch.float32),
                "surface_height": (surface if surface is not None else torch.zeros(rows, cols)).float(),
                "surface_valid": torch.full((rows, cols), surface is not None),
                "corr_aerial_uv": torch.from_numpy(corr), "corr_valid": torch.from_numpy(valid),
                **camera_tensors(mounted)}


class CameraGroupedBatchSampler(torch.utils.data.Sampler):
    """Endless shuffled batches of indices that share a camera key, split over DDP ranks.

    Each epoch shuffles the indices, groups them by key and cuts each group into batches of
    `batch_size` (the last of a group may be smaller); batches are then shuffled and dealt to ranks.
    Indices of epoch e are offset by e * len(keys) (`DatasetPairs` draws its augmentation from it).
    """

    def __init__(self, keys: list, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        self.keys, self.batch_size, self.seed, self.rank, self.world, self.epoch = keys, batch_size, seed, rank, world, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        groups: dict = {}
        for i in rng.permutation(len(self.keys)):
            groups.setdefault(self.keys[i], []).append(int(i))
        batches = [g[j:j + self.batch_size] for g in groups.values() for j in range(0, len(g), self.batch_size)]
        order = rng.permutation(len(batches))
        offset = epoch * len(self.keys)
        return [[i + offset for i in batches[j]] for j in order][self.rank::self.world]

    def __iter__(self):
        while True:
            batches = self.epoch_batches(self.epoch)
            if not batches:
                raise ValueError(f"data: {len(self.keys)} pairs give no batch for rank {self.rank} of {self.world}")
            yield from batches
            self.epoch += 1
