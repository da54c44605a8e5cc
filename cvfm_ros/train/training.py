"""Training of the ViewBridge matcher: on-the-fly synthetic pairs (or a CVFM-format folder),
one loop that runs unchanged on one CPU process or under `torchrun` (DistributedDataParallel,
gloo on CPU, nccl on GPU), mixed precision on GPU, JSON-lines metrics, resumable checkpoints
saved and loaded as plain state dicts with `weights_only=True`.

    cvfm-ros train --config config/train_synth.yaml
    torchrun --nproc_per_node 4 -m cvfm_ros.cli.main train --config config/train_synth.yaml
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import atomic_write_text, from_dict
from ..geometry import RIG_POSITIONS, CameraRig, MountedCamera, PinholeCamera
from ..data.synth.augment import AugmentConfig, augment_aerial, augment_ground
from ..model.checkpoint import load_matcher, load_weights, read_checkpoint, save_checkpoint
from ..model.extractor import ExtractorConfig
from ..model.losses import LossConfig, ViewBridgeLoss
from ..model.matcher import DEFAULT_AERIAL_MPP, MatcherConfig, ViewBridgeMatcher
from .sources import CameraGroupedBatchSampler, DatasetPairs, camera_from_batch, camera_tensors


@dataclass
class DataSettings:
    source: str = "synth"  # synth (on the fly) | a dataset folder: CVFM format, VIGOR or KITTI (train_sources.py)
    split: str = "train"  # the dataset folder's split to train on (KITTI: a split name or file)
    styles: list[str] = field(default_factory=lambda: ["downtown", "suburb", "industrial", "oldtown"])
    seed: int = 0
    length: int = 200000
    world_size_m: float = 160.0
    pairs_per_world: int = 32
    aerial_mpp: float = DEFAULT_AERIAL_MPP
    max_offset_frac: float = 0.25
    prior_yaw_noise_deg: float = 10.0  # 180: orientation unknown
    correspondences: int = 1024  # pixel-level correspondences kept per pair for the matching loss
    workers: int = 1
    # Cameras of the synthetic blocks (one camera per batch): panoramas, and this share of
    # pinhole cameras looking forward with a horizontal FOV in `pinhole_hfov_deg`, pitched down
    # by `pinhole_pitch_deg`, pixels `pinhole_aspect` (fy / fx: a 4:3 or 16:9 image resized to
    # the matcher's 2:1 input), all at a mounting height in `camera_height_m`.
    pinhole_share: float = 0.0
    pinhole_hfov_deg: list[float] = field(default_factory=lambda: [60.0, 120.0])
    pinhole_pitch_deg: list[float] = field(default_factory=lambda: [-5.0, 15.0])
    pinhole_aspect: list[float] = field(default_factory=lambda: [0.6, 1.0])
    camera_height_m: list[float] = field(default_factory=lambda: [1.4, 2.2])
    # Camera rigs (issue 14): this share of the blocks is a rig of pinholes looking towards
    # `rig_cameras` (names of geometry.RIG_POSITIONS), each with a horizontal FOV in
    # `rig_hfov_deg` and pixels `rig_aspect` (fy / fx: robots' 4:3 and 16:9 cameras resized to the
    # matcher's 2:1 input; [1, 1] = square pixels, as the first rig recipe drew), pitched like the
    # pinholes, lifted into one BEV. Drawn apart from the other cameras, so recipes without rigs
    # draw exactly what they drew before.
    rig_share: float = 0.0
    rig_cameras: list[str] = field(default_factory=lambda: ["front", "left", "rear", "right"])
    rig_hfov_deg: list[float] = field(default_factory=lambda: [80.0, 100.0])
    rig_aspect: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # Mismatched pairs (issue 14): this share of the pairs gets its aerial patch transposed
    # (mirrored about the diagonal: a layout no place of the world has, so nothing the camera sees
    # is in it) and learns "every cell to the dustbin" (model/losses.py, `negative`). The
    # matcher never saw imagery it cannot explain, so it found as many effective inliers in it as
    # in a weak right pair, and the validity gate set above those refused right fixes. Drawn
    # last per pair, so recipes without negatives draw what they drew before.
    negative_share: float = 0.0
    # Appearance augmentation towards real imagery (data/synth/augment.py); off in the older recipes.
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(enabled=False))

    def __post_init__(self) -> None:
        for key in ("pinhole_share", "rig_share", "negative_share"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"data.{key}: expected a share in [0, 1], got {getattr(self, key)}")
        if not self.rig_cameras or not set(self.rig_cameras) <= set(RIG_POSITIONS) \
                or len(set(self.rig_cameras)) != len(self.rig_cameras):
            raise ValueError(f"data.rig_cameras: expected distinct names of {sorted(RIG_POSITIONS)}, got {self.rig_cameras}")
        for key, low, high in (("pinhole_hfov_deg", 20.0, 170.0), ("rig_hfov_deg", 20.0, 170.0),
                               ("pinhole_pitch_deg", -45.0, 45.0), ("pinhole_aspect", 0.2, 5.0), ("rig_aspect", 0.2, 5.0),
                               ("camera_height_m", 0.2, 10.0)):
            value = getattr(self, key)
            if len(value) != 2 or not low <= value[0] <= value[1] <= high:
                raise ValueError(f"data.{key}: expected [min, max] within [{low}, {high}], got {value}")


@dataclass
class OptimSettings:
    batch_size: int = 4
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    threads: int = 0  # torch threads per process (0: leave the default)


@dataclass
class TrainConfig:
    out_dir: str = "runs/synth"
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    log_every: int = 10
    checkpoint_every: int = 100
    loss: LossConfig = field(default_factory=LossConfig)
    use_surface_model: bool = True
    use_simrefiner: bool = True
    use_prior_yaw: bool = True
    # Feature extractors (model/extractor.py, model/pretrained.py); compact_cnn from scratch by default.
    ground_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    aerial_extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    # Extra copies of the checkpoint kept at these steps (out_dir/step_<N>.pt), e.g. to compare
    # runs at an equal budget without changing their learning-rate schedule.
    keep_steps: list[int] = field(default_factory=list)
    # Weights to start from (a checkpoint or a released file, e.g. the shipped weights before
    # fine-tuning on real data) when out_dir holds no checkpoint to resume; the optimizer and the
    # schedule start fresh. Its matcher config must equal this run's.
    init_from: str = ""
    # With init_partial, init_from's weights are copied wherever name and shape fit (e.g. the
    # shipped matcher's lifting, Surface Model and SimRefiner under new extractors); else its
    # config must equal this run's.
    init_partial: bool = False


def matcher_config_for(cfg: TrainConfig) -> MatcherConfig:
    return MatcherConfig(use_surface_model=cfg.use_surface_model, use_simrefiner=cfg.use_simrefiner,
                         use_prior_yaw=cfg.use_prior_yaw, ground_extractor=cfg.ground_extractor,
                         aerial_extractor=cfg.aerial_extractor, aerial_mpp=cfg.data.aerial_mpp)


class TrainingPairs(torch.utils.data.Dataset):
    """Synthetic pairs shaped for the matcher: one camera per block of `batch` consecutive items
    (the matcher takes one camera per batch), targets in the matcher's frames."""

    def __init__(self, data: DataSettings, matcher_config: MatcherConfig, bev_grid, batch: int) -> None:
        from ..data.synth import SyntheticPairDataset

        self.data, self.batch = data, batch
        self.ground_hw, self.aerial_hw = matcher_config.ground_hw, matcher_config.aerial_hw
        self.bev = bev_grid
        self.pairs = SyntheticPairDataset(data.styles, seed=data.seed, length=data.length,
                                          pairs_per_world=data.pairs_per_world, world_size_m=data.world_size_m)

    def __len__(self) -> int:
        return self.data.length

    def camera_for(self, index: int) -> MountedCamera | CameraRig:
        """The camera of `index`'s block of `batch` items (the matcher lifts one camera per batch)."""
        draw = random.Random(self.data.seed * 7919 + index // self.batch)
        low, high = self.data.camera_height_m
        height = low + (high - low) * draw.random()
        hg, wg = self.ground_hw
        rig_draw = random.Random((self.data.seed * 7919 + index // self.batch) * 31 + 17)
        if self.data.rig_share > 0 and rig_draw.random() < self.data.rig_share:
            f = 0.5 * wg / math.tan(math.radians(rig_draw.uniform(*self.data.rig_hfov_deg)) / 2)
            pitch = math.radians(rig_draw.uniform(*self.data.pinhole_pitch_deg))
            fy = f * rig_draw.uniform(*self.data.rig_aspect)  # drawn last: [1, 1] keeps the earlier draws
            return CameraRig.ring(PinholeCamera(f, fy, (wg - 1) / 2, (hg - 1) / 2, wg, hg), height, self.data.rig_cameras,
                                  pitch)
        if self.data.pinhole_share <= 0 or draw.random() >= self.data.pinhole_share:
            return MountedCamera.panorama(wg, hg, height)
        hfov = math.radians(draw.uniform(*self.data.pinhole_hfov_deg))
        fx = 0.5 * wg / math.tan(hfov / 2)
        fy = fx * draw.uniform(*self.data.pinhole_aspect)
        camera = PinholeCamera(fx, fy, (wg - 1) / 2, (hg - 1) / 2, wg, hg)
        return MountedCamera.forward_pinhole(camera, height, math.radians(draw.uniform(*self.data.pinhole_pitch_deg)))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from ..data.synth import make_pair

        camera = self.camera_for(index)
        world = self.pairs.world(index // self.data.pairs_per_world)
        rng = np.random.default_rng([self.data.seed, index])
        # make_pair draws its own camera; we need the block's camera, so render with it directly.
        sample = make_pair(world, rng, camera="pano", ground_size=(self.ground_hw[1], self.ground_hw[0]),
                           aerial_size=self.aerial_hw[0], mpp=self.data.aerial_mpp,
                           max_offset_frac=self.data.max_offset_frac, bev=self.bev,
                           prior_yaw_noise_deg=self.data.prior_yaw_noise_deg, camera_override=camera)
        if self.data.augment.enabled:
            if isinstance(camera, CameraRig):  # each camera's image on its own (its own horizon)
                sample.ground = np.stack([augment_ground(g, rng, self.data.augment, horizon_row=self._horizon_row(c))
                                          for g, c in zip(sample.ground, camera.cameras)])
            else:
                sample.ground = augment_ground(sample.ground, rng, self.data.augment, horizon_row=self._horizon_row(camera))
            sample.aerial = augment_aerial(sample.aerial, rng, self.data.augment)
        t = sample.to_tensors()
        vis = np.argwhere(sample.visible)  # (P, 2) rows, cols; (P, 3) camera, rows, cols for a rig
        k = self.data.correspondences
        pick = rng.choice(len(vis), size=min(k, len(vis)), replace=False) if len(vis) else np.zeros(0, int)
        corr = np.zeros((k, 2), np.float32)
        valid = np.zeros(k, bool)
        corr[: len(pick)] = sample.aerial_uv[tuple(vis[pick].T)]
        valid[: len(pick)] = True
        aerial, negative = t["aerial"], False
        if self.data.negative_share > 0 and rng.random() < self.data.negative_share:
            aerial, negative = aerial.transpose(-1, -2).contiguous(), True  # (3, H, W), square
            valid[:] = False
        return {"ground": t["ground"], "aerial": aerial, "prior_yaw": t["prior_yaw"], "negative": torch.tensor(negative),
                "aerial_mpp": torch.tensor(self.data.aerial_mpp, dtype=torch.float32),
                "pose": t["pose_in_patch"], "surface_height": t["bev_height"],
                "corr_aerial_uv": torch.from_numpy(corr), "corr_valid": torch.from_numpy(valid),
                **camera_tensors(camera)}

    def _horizon_row(self, camera: MountedCamera) -> int:
        """Image row of the horizon (sky lies above it): the middle for a level panorama."""
        cam = camera.camera
        if not isinstance(cam, PinholeCamera):
            return self.ground_hw[0] // 2
        forward = camera.base_from_camera.rotation.double()[:, 2]  # optical axis in base_link
        pitch_down = math.asin(max(-1.0, min(1.0, -float(forward[2]))))
        return int(max(0, min(self.ground_hw[0], cam.cy - cam.fy * math.tan(pitch_down))))


class BlockShuffleSampler(torch.utils.data.Sampler):
    """Shuffles blocks of `block` consecutive indices (one camera per block), split over ranks."""

    def __init__(self, length: int, block: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.blocks = length // block
        self.block, self.seed, self.rank, self.world, self.epoch = block, seed, rank, world, 0

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.blocks)[self.rank::self.world]
        for b in order:
            yield from range(b * self.block, (b + 1) * self.block)

    def __len__(self) -> int:
        return (self.blocks // self.world) * self.block


def copy_fitting_weights(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> int:
    """Copy the tensors of `source` whose name and shape exist in `model`; returns how many."""
    own = model.state_dict()
    fitting = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return len(fitting)


def _distributed() -> tuple[int, int, torch.device]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _starting_weights(cfg: TrainConfig, model: ViewBridgeMatcher, opt: torch.optim.Optimizer, last: Path | None,
                      rank: int) -> int:
    """Load what the run starts from: `last` (resume: weights, optimizer, step) if it exists, else
    `init_from` (whole, or where name and shape fit with `init_partial`). Returns the step."""
    if last is not None and last.is_file():
        payload = read_checkpoint(last)
        load_weights(model, payload["state_dict"], f"checkpoint {last}")
        extra = payload.get("extra", {})
        if "optimizer" in extra:
            opt.load_state_dict(extra["optimizer"])
        return int(extra.get("step", 0))
    if cfg.init_from and cfg.init_partial:
        copied = copy_fitting_weights(model, load_matcher(cfg.init_from).state_dict())
        if rank == 0:
            print(f"init_from {cfg.init_from}: {copied} of {len(model.state_dict())} tensors copied (init_partial)")
    elif cfg.init_from:
        try:
            start = load_matcher(cfg.init_from, config=model.config)
        except ValueError as exc:
            raise ValueError(f"init_from: {exc}") from exc
        model.load_state_dict(start.state_dict())
    return 0


def _loader(cfg: TrainConfig, model: ViewBridgeMatcher, step: int, rank: int,
            world_size: int) -> torch.utils.data.DataLoader:
    """Batches that share one camera each: on-the-fly synthetic pairs or a dataset folder; a
    resumed run (`step` > 0) draws new ones."""
    mconf = model.config
    if cfg.data.source == "synth":
        dataset = TrainingPairs(cfg.data, mconf, model.bev_grid, cfg.optim.batch_size)
        sampler = BlockShuffleSampler(len(dataset), cfg.optim.batch_size, cfg.data.seed, rank, world_size)
        sampler.epoch = step
        batching = {"batch_size": cfg.optim.batch_size, "sampler": sampler}
    else:
        dataset = DatasetPairs(cfg.data.source, mconf.ground_hw, mconf.aerial_hw[0], mconf.aerial_hw[0] * cfg.data.aerial_mpp,
                               split=cfg.data.split, bev_grid=model.bev_grid, correspondences=cfg.data.correspondences,
                               prior_yaw_noise_deg=cfg.data.prior_yaw_noise_deg, max_offset_frac=cfg.data.max_offset_frac,
                               seed=cfg.data.seed)
        batch_sampler = CameraGroupedBatchSampler(dataset.keys, cfg.optim.batch_size, cfg.data.seed, rank, world_size)
        batch_sampler.epoch = step
        batching = {"batch_sampler": batch_sampler}
    return torch.utils.data.DataLoader(dataset, **batching, num_workers=cfg.data.workers,
                                       persistent_workers=cfg.data.workers > 0,
                                       prefetch_factor=4 if cfg.data.workers > 0 else None)


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True, stop_at: int | None = None) -> Path:
    """Run (or resume) training; returns the path of the last checkpoint.

    `stop_at`: stop after this step, with the learning-rate schedule of `cfg.optim.steps` (an
    equal-budget ablation is the same run stopped early)."""
    from tqdm import tqdm

    rank, world_size, device = _distributed()
    if cfg.optim.threads:
        torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.data.seed + rank)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mconf = matcher_config_for(cfg)
    model = ViewBridgeMatcher(mconf).to(device)
    loss_fn = ViewBridgeLoss(cfg.loss)
    # Frozen pretrained backbones have no gradient and no optimizer state.
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay)
    last = out / "last.pt"
    step = _starting_weights(cfg, model, opt, last if resume else None, rank)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    hg, wg = mconf.ground_hw
    loader = _loader(cfg, model, step, rank, world_size)

    def schedule(s: int) -> float:  # linear warm-up, then cosine decay
        warmup = min(1.0, (s + 1) / max(cfg.optim.warmup_steps, 1))
        return warmup * 0.5 * (1 + math.cos(math.pi * min(s / cfg.optim.steps, 1.0)))
    log_path = out / "metrics.jsonl"
    bar = tqdm(total=cfg.optim.steps, initial=step, disable=not progress or rank != 0, desc="train")
    use_amp = device.type == "cuda"
    started = time.time()
    model.train()
    iterator = iter(loader)
    last_step = cfg.optim.steps if stop_at is None else min(stop_at, cfg.optim.steps)
    while step < last_step:
        batch = next(iterator)
        # both samplers give batches that share one camera
        camera = camera_from_batch(batch, wg, hg)
        batch = {k: v.to(device) for k, v in batch.items()}
        for group in opt.param_groups:
            group["lr"] = cfg.optim.lr * schedule(step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            outputs = ddp({"ground": batch["ground"], "aerial": batch["aerial"], "aerial_mpp": batch["aerial_mpp"],
                           "prior_yaw": batch["prior_yaw"], "camera": camera})
            terms = loss_fn(model, outputs, batch, step=step)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        step += 1
        if rank == 0:
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.optim.steps:
                with torch.no_grad():
                    err = (outputs["pose"][:, :2] - batch["pose"][:, :2]).norm(dim=-1)
                    if "negative" in batch:  # a mismatched pair has no pose to find
                        err = err[~batch["negative"]]
                record = {"step": step, "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.time() - started, 1),
                          **{k: float(v.detach()) for k, v in terms.items()},
                          "pos_err_median_m": float(err.median()) if len(err) else float("nan")}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{record['total']:.3f}", err=f"{record['pos_err_median_m']:.2f}m")
            if step % cfg.checkpoint_every == 0 or step in (last_step, *cfg.keep_steps):
                save_checkpoint(last, model, extra={"optimizer": opt.state_dict(), "step": step,
                                                    "train_config": json.loads(json.dumps(asdict(cfg)))})
                if step in cfg.keep_steps:
                    shutil.copyfile(last, out / f".step_{step}.pt.tmp")
                    os.replace(out / f".step_{step}.pt.tmp", out / f"step_{step}.pt")
    bar.close()
    if dist.is_initialized():
        dist.barrier()
    atomic_write_text(out / "train_config.json", json.dumps(asdict(cfg), indent=2))
    return last


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    from ..config import load_yaml

    return from_dict(TrainConfig, load_yaml(path), where=str(path))
