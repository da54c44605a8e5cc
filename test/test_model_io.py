"""Checkpoints, ONNX export and the extractor registry of the matcher."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from cvfm_ros.geometry import MountedCamera, PinholeCamera
from cvfm_ros.model import (EXTRACTORS, ExtractorConfig, OnnxMatcher, ViewBridgeMatcher, build_extractor,
                            export_onnx, load_matcher, read_checkpoint, register_extractor, save_checkpoint)
from cvfm_ros.model.toy import flat_world_batch, tiny_matcher_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PANO = MountedCamera.panorama(64, 32, 1.6)


def _model(**overrides):
    torch.manual_seed(0)
    return ViewBridgeMatcher(tiny_matcher_config(**overrides), PANO)


def _batch(b=1, seed=3):
    return flat_world_batch(b, (32, 32), 0.5, PANO, max_offset_m=3.0, bev_cells=8, seed=seed)[0]


def test_checkpoint_round_trip(tmp_path):
    model = _model()
    path = tmp_path / "sub" / "matcher.pt"
    save_checkpoint(path, model, model.config, {"step": 12, "metrics": {"median_m": 1.5}, "t": torch.ones(2)})
    assert [p.name for p in path.parent.iterdir()] == ["matcher.pt"]  # no temporary file left
    loaded = load_matcher(path, camera=PANO)
    assert not loaded.training and loaded.config == model.config
    batch = _batch()
    model.eval()
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    for key in ("pose", "covariance", "match_weights", "surface_height"):
        assert torch.equal(a[key], b[key]), key
    extra = read_checkpoint(path)["extra"]
    assert extra["step"] == 12 and extra["metrics"]["median_m"] == 1.5
    # Same expected config: fine.
    load_matcher(path, config=model.config)


def test_checkpoint_of_another_architecture_or_config_is_rejected(tmp_path):
    model = _model()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match=r"config differs.*use_surface_model"):
        load_matcher(path, config=tiny_matcher_config(use_surface_model=False))
    # A checkpoint of something else entirely.
    payload = read_checkpoint(path)
    torch.save(dict(payload, architecture="OtherNet"), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="architecture 'OtherNet'"):
        load_matcher(tmp_path / "other.pt")
    torch.save({"state_dict": payload["state_dict"]}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a cvfm_ros matcher checkpoint"):
        load_matcher(tmp_path / "plain.pt")
    # Config and weights that do not fit each other (weights of the ablated model).
    ablated = _model(use_simrefiner=False)
    torch.save(dict(payload, state_dict=ablated.state_dict()), tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="weights do not fit"):
        load_matcher(tmp_path / "mismatch.pt")
    # A config key this code does not know (e.g. from a newer version).
    torch.save(dict(payload, config=dict(payload["config"], new_switch=True)), tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="unknown key"):
        load_matcher(tmp_path / "newer.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt"):
        load_matcher(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not found"):
        load_matcher(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="extra"):
        save_checkpoint(tmp_path / "bad.pt", model, extra={"obj": object()})
    with pytest.raises(ValueError, match="config"):
        save_checkpoint(tmp_path / "bad.pt", model, config=tiny_matcher_config(use_prior_yaw=False))


PINHOLE = MountedCamera.forward_pinhole(PinholeCamera(30.0, 30.0, 31.5, 15.5, 64, 32, (-0.1, 0.01, 0.0, 0.0, 0.0)),
                                        1.6, math.radians(20))


@pytest.mark.parametrize("camera,mutual", [(PANO, False), (PINHOLE, False), (PANO, True)])
def test_onnx_export_agrees_with_torch(tmp_path, camera, mutual):
    # K = N, so no tie at the top-k boundary; without the mutual check every seen BEV cell gives a
    # weighted match (a well-posed pose to compare); with it, the selection logic itself is compared.
    config = tiny_matcher_config()
    config = replace(config, pose=replace(config.pose, require_mutual=mutual, min_effective_matches=2.0))
    torch.manual_seed(0)
    model = ViewBridgeMatcher(config, camera).eval()
    with torch.no_grad():  # non-trivial refiner weights (its output layers start at zero)
        for p in model.simrefiner.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch, _ = flat_world_batch(2, (32, 32), 0.5, camera, 3.0, 8, seed=5)
    path = tmp_path / "matcher.onnx"
    export_onnx(model, path, aerial_mpp=0.5, batch_size=2)
    ort_out = OnnxMatcher(path)(batch)
    with torch.no_grad():
        ref = model(batch)
    if not mutual:
        assert ref["pose_solvable"].all() and (ref["match_weights"] > 0).sum(-1).min() >= 10
    np.testing.assert_array_equal(ort_out["valid"], ref["valid"].numpy())
    np.testing.assert_allclose(ort_out["pose"], ref["pose"].numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(ort_out["covariance"], ref["covariance"].numpy(), atol=1e-4, rtol=1e-3)
    for key in ("matches_bev_xy", "matches_aerial_uv", "matches_ground_uv", "match_weights", "effective_inliers"):
        np.testing.assert_allclose(ort_out[key], ref[key].numpy(), atol=1e-3, rtol=1e-4, err_msg=key)
    with pytest.raises(ValueError, match="ground: expected shape"):
        OnnxMatcher(path)({**batch, "ground": batch["ground"][:1]})


def test_onnx_export_needs_a_camera(tmp_path):
    with pytest.raises(ValueError, match="camera"):
        export_onnx(ViewBridgeMatcher(tiny_matcher_config()), tmp_path / "m.onnx", aerial_mpp=0.5)


def test_extractor_registry_and_local_weights(tmp_path):
    class Wide(nn.Module):
        stride = 4
        input_multiple = 4

        def __init__(self, config):
            super().__init__()
            self.out_channels = config.out_channels
            self.net = nn.Sequential(nn.Conv2d(3, config.out_channels, 4, 4), nn.ReLU())

        def forward(self, x):
            return self.net(x)

    register_extractor("test_wide")(Wide)
    try:
        cfg = ExtractorConfig(name="test_wide", out_channels=16, groups=4, channels=(8, 16, 16))
        trained = build_extractor(cfg)
        torch.save(trained.state_dict(), tmp_path / "wide.pt")
        loaded = build_extractor(replace(cfg, weights=str(tmp_path / "wide.pt")))
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
        # The matcher uses a registered extractor by name.
        model = ViewBridgeMatcher(tiny_matcher_config(ground_extractor=cfg), PANO)
        assert isinstance(model.ground_extractor, Wide)
        with torch.no_grad():
            assert model(_batch())["pose"].shape == (1, 3)
        # Weights of another architecture: a clear error naming the file.
        torch.save(build_extractor(tiny_matcher_config().aerial_extractor).state_dict(), tmp_path / "cnn.pt")
        with pytest.raises(ValueError, match="cnn.pt.*does not fit"):
            build_extractor(replace(cfg, weights=str(tmp_path / "cnn.pt")))
    finally:
        EXTRACTORS.pop("test_wide")
    with pytest.raises(ValueError, match="unknown"):
        build_extractor(ExtractorConfig(name="resnet9000"))
    with pytest.raises(ValueError, match="URL"):
        ExtractorConfig(weights="https://example.com/w.pt")
    with pytest.raises(ValueError, match="not found"):
        build_extractor(ExtractorConfig(weights=str(tmp_path / "nope.pt")))


def test_matcher_info_command(tmp_path, capsys):
    import json

    from cvfm_ros.cli.main import main

    out = tmp_path / "info.json"
    assert main(["matcher-info", "--tiny", "--threads", "1", "--repeat", "1", "--flat-world-steps", "2",
                 "--eval-pairs", "2", "--mpp", "0.5", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["parameters"]["total"] == sum(v for k, v in data["parameters"].items() if k != "total")
    assert data["torch_forward_ms"] > 0 and set(data["matcher"]) >= {"median_m", "valid", "cell_top1"}
    assert "baseline" in data
    assert "parameters:" in capsys.readouterr().out
    assert main(["matcher-info", "--tiny", "--mpp", "-1"]) == 2


class _Payload:
    """Stands for any Python object a checkpoint may carry beyond tensors and plain data."""


def test_a_checkpoint_with_objects_is_refused_without_advice_to_unpickle(tmp_path):
    """torch's weights-only rejection suggests weights_only=False; ours names what the file holds
    and never suggests running it (issue 12, item 19)."""
    path = tmp_path / "object.pt"
    torch.save({"format": "x", "payload": _Payload()}, path)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "_Payload" in message
    assert "weights_only=False" not in message and "trust" not in message


def test_release_of_a_checkpoint_with_a_malformed_train_config_names_it(tmp_path):
    from cvfm_ros.train.release import release_checkpoint

    src = tmp_path / "odd.pt"
    save_checkpoint(src, _model(), extra={"train_config": [1, 2]})
    assert isinstance(read_checkpoint(src)["extra"]["train_config"], list)
    with pytest.raises(ValueError, match="train_config"):
        release_checkpoint(src, tmp_path / "out.pt")


def test_synth_pairs_refuses_a_zero_cell(tmp_path, capsys):
    from cvfm_ros.cli.main import main

    assert main(["synth", "pairs", "--out", str(tmp_path / "p"), "--count", "4", "--bev-cell", "0", "--quiet"]) == 2
    assert "--bev-cell" in capsys.readouterr().err
