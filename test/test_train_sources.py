"""Training from dataset folders: CVFM-format pairs, VIGOR and KITTI layouts, camera-grouped batches."""
import json

import numpy as np
import pytest
import torch
import yaml
from test_real_kitti import kitti_root  # noqa: F401 (fixture)
from test_real_vigor import vigor_root  # noqa: F401 (fixture)

from cvfm_ros.cli.main import main
from cvfm_ros.data.synth.dataset import write_dataset
from cvfm_ros.geometry import MountedCamera, PinholeCamera
from cvfm_ros.model import MatcherConfig, ViewBridgeMatcher
from cvfm_ros.maps.aerial_image import aerial_crop
from cvfm_ros.train.sources import (CameraGroupedBatchSampler, DatasetPairs, camera_from_batch,
                                    camera_tensors, detect_source)

GROUND_HW, AERIAL_PX, COVERAGE_M = (128, 256), 128, 51.2


@pytest.fixture(scope="module")
def cvfm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvfm")
    write_dataset(root, count=12, seed=5, styles=["suburb"], correspondences=2048, pairs_per_world=6,
                  world_size_m=160.0, progress=False, bev_size_m=64.0, bev_cell_m=2.0,
                  prior_yaw_noise_deg=10.0)
    return root


def test_aerial_crop_maps_pixels_like_the_returned_affine():
    rng = np.random.default_rng(0)
    aerial = np.zeros((300, 300, 3), np.uint8)
    marker = (212.0, 71.0)
    aerial[71, 212] = 255
    out, src_to_dst = aerial_crop(aerial, 0.2, (180.0, 100.0), 32.0, 64)  # 0.5 m per output px: 2.5x down
    u, v = src_to_dst @ np.array([*marker, 1.0])
    peak = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert abs(peak[1] - u) <= 1 and abs(peak[0] - v) <= 1
    # the crop's centre is the requested source pixel
    centre = src_to_dst @ np.array([180.0, 100.0, 1.0])
    assert np.allclose(centre, (63 / 2, 63 / 2))
    assert rng is not None


def test_detect_source_names_the_problem(tmp_path, cvfm_root, vigor_root, kitti_root):  # noqa: F811
    assert detect_source(cvfm_root) == "cvfm"
    assert detect_source(vigor_root) == "vigor"
    assert detect_source(kitti_root) == "kitti"
    with pytest.raises(ValueError, match="data.source: .* is not a directory"):
        detect_source(tmp_path / "missing")
    with pytest.raises(ValueError, match="neither a CVFM-format folder"):
        detect_source(tmp_path)


def test_cvfm_items_keep_exact_correspondences(cvfm_root):
    matcher = ViewBridgeMatcher(MatcherConfig())
    ds = DatasetPairs(cvfm_root, GROUND_HW, AERIAL_PX, COVERAGE_M, bev_grid=matcher.bev_grid, correspondences=256)
    assert len(ds) == len(json.loads((cvfm_root / "index.json").read_text())["splits"]["train"])
    item = ds[0]
    assert item["ground"].shape == (3, *GROUND_HW) and item["aerial"].shape == (3, AERIAL_PX, AERIAL_PX)
    assert float(item["aerial_mpp"]) == pytest.approx(COVERAGE_M / AERIAL_PX)
    # The stored 256 px / 0.2 m patch becomes 128 px / 0.4 m: every correspondence halves, and the
    # true position maps onto the aerial pixel that the correspondences of the ground below it use.
    raw = ds.source[0]
    kept = item["corr_valid"]
    assert kept.sum() > 50
    uv = item["corr_aerial_uv"][kept]
    assert (uv >= -0.5).all() and (uv <= AERIAL_PX - 0.5).all()
    all_uv = raw["aerial_uv"][raw["visible"]]
    expected = (all_uv + 0.5) / 2 - 0.5
    d = torch.cdist(uv.double(), expected.double()).min(dim=1).values
    assert d.max() < 1e-3
    assert torch.allclose(item["pose"], raw["pose_in_patch"].float(), atol=1e-5)
    # stored on the matcher's own BEV grid, so the Surface Model is supervised
    assert item["surface_valid"].all() and torch.equal(item["surface_height"], raw["bev_height"])
    cam = camera_from_batch({k: v[None] for k, v in item.items()}, GROUND_HW[1], GROUND_HW[0])
    assert cam.height_m == pytest.approx(float(raw["camera_height"]), abs=1e-6)


def test_real_layouts_give_matcher_items(vigor_root, kitti_root):  # noqa: F811
    vigor = DatasetPairs(vigor_root, GROUND_HW, AERIAL_PX, COVERAGE_M, split="train", correspondences=16,
                         prior_yaw_noise_deg=10.0)
    assert len(vigor) == 8 and len(set(vigor.keys)) == 1
    a, b = vigor[0], vigor[0 + len(vigor)]  # the same pair in the next epoch: another heading
    for item in (a, b):
        assert item["ground"].shape == (3, *GROUND_HW) and int(item["camera_model"]) == 0
        assert abs(float(item["prior_yaw"]) - float(item["pose"][2])) <= np.radians(10) + 1e-6
        assert not item["corr_valid"].any() and not item["surface_valid"].any()
    assert not torch.equal(a["ground"], b["ground"])

    kitti = DatasetPairs(kitti_root, GROUND_HW, AERIAL_PX, COVERAGE_M, split="train", max_offset_frac=0.25)
    item = kitti[1]
    assert int(item["camera_model"]) == 1 and item["ground"].shape == (3, *GROUND_HW)
    assert item["pose"][:2].abs().max() <= 0.25 * COVERAGE_M / 2 + 1e-4
    cam = camera_from_batch({k: v[None] for k, v in item.items()}, GROUND_HW[1], GROUND_HW[0])
    assert isinstance(cam.camera, PinholeCamera) and cam.camera.width == GROUND_HW[1]
    # the camera still looks along base_link +x from the mounting height
    assert 1.0 < cam.height_m < 2.5
    ray = cam.rays_in_base(torch.tensor([[cam.camera.cx, cam.camera.cy]], dtype=torch.float64))[0]
    assert ray[0] > 0.9 * ray.norm()


def test_camera_grouped_batches():
    keys = [("a",)] * 7 + [("b",)] * 5 + [("c",)]
    sampler = CameraGroupedBatchSampler(keys, batch_size=3, seed=1)
    batches = sampler.epoch_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(13))
    assert all(len({keys[i] for i in b}) == 1 and len(b) <= 3 for b in batches)
    ranks = [CameraGroupedBatchSampler(keys, 3, seed=1, rank=r, world=2).epoch_batches(0) for r in (0, 1)]
    assert sorted(i for r in ranks for b in r for i in b) == list(range(13))
    nxt = sampler.epoch_batches(1)
    assert min(i for b in nxt for i in b) == 13  # epoch 1 indices are offset by one epoch
    with pytest.raises(ValueError, match="batch_size"):
        CameraGroupedBatchSampler(keys, 0, seed=1)
    mounted = MountedCamera.panorama(256, 128, 1.7)
    back = camera_from_batch({k: v[None] for k, v in camera_tensors(mounted).items()}, 256, 128)
    assert back.height_m == pytest.approx(1.7)


def test_train_from_a_cvfm_folder(tmp_path, cvfm_root):
    cfg = {"out_dir": str(tmp_path / "run"),
           "data": {"source": str(cvfm_root), "workers": 0, "correspondences": 256},
           "optim": {"batch_size": 2, "steps": 2, "warmup_steps": 1, "threads": 1},
           "log_every": 1, "checkpoint_every": 2}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["total"]) and r["surface"] > 0 for r in records)
    cfg["data"]["source"] = str(tmp_path / "nowhere")
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--no-resume"]) == 2
