"""Feature extractors for the ground and aerial images: a compact CNN and a registry by name.

The default extractor is a small residual CNN trained from scratch (no pretrained backbone, no
download): stride-8 context fused back into stride-4 features, GroupNorm so that small CPU
batches train the same way they run. Any other extractor can be registered by name and its
weights loaded from a local file (`torch.load(weights_only=True)`).

Contract of an extractor module: `forward(image (B, 3, H, W) float in [0, 1]) -> (B, C, H/s, W/s)`
with attributes `out_channels` (C) and `stride` (s); H and W must be multiples of
`input_multiple`.

Convention: feature cell (i, j) of a stride-s map covers image pixels [s*j, s*j + s) x
[s*i, s*i + s); its centre is the OpenCV pixel (s*j + (s-1)/2, s*i + (s-1)/2).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class ExtractorConfig:
    """Settings of one extractor (ground and aerial each have their own)."""

    name: str = "compact_cnn"  # key in EXTRACTORS
    channels: tuple[int, ...] = (32, 48, 64)  # widths at strides 2, 4, 8
    out_channels: int = 64
    blocks: tuple[int, ...] = (1, 2, 2)  # residual blocks at strides 2, 4, 8
    groups: int = 8  # GroupNorm groups (must divide every width)
    weights: str | None = None  # local state-dict file to load after construction (never a URL)
    # Pretrained extractors (pretrained.py): their backbone's weights come from an installed package
    # (False: random, for tests); a frozen backbone is not trained and not stored in checkpoints.
    pretrained: bool = True
    freeze_backbone: bool = True
    timm_model: str = ""  # the `timm` extractor's architecture, e.g. "vit_small_patch14_dinov2"
    backbone_weights: str | None = None  # the `timm` extractor's local weights file (never a URL)

    def __post_init__(self) -> None:
        if len(self.channels) != 3 or len(self.blocks) != 3:
            raise ValueError(f"ExtractorConfig: channels and blocks need 3 entries (strides 2, 4, 8), got "
                             f"{self.channels} and {self.blocks}")
        for width in (*self.channels, self.out_channels):
            if width <= 0 or width % self.groups:
                raise ValueError(f"ExtractorConfig: width {width} must be positive and divisible by groups={self.groups}")
        if any(b < 0 for b in self.blocks):
            raise ValueError(f"ExtractorConfig: blocks must be >= 0, got {self.blocks}")
        for key in ("weights", "backbone_weights"):
            value = getattr(self, key)
            if value is not None and "://" in value:
                raise ValueError(f"ExtractorConfig.{key}: expected a local file path, got URL {value!r}")


# Replicate padding: with zero padding the border and corner cells get distinctive features that
# the ground-aerial matcher latches onto (a BEV corner "matches" an aerial corner), a shortcut
# seen in training on flat worlds.
PADDING = "replicate"


def conv_norm_act(cin: int, cout: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False, padding_mode=PADDING), nn.GroupNorm(groups, cout),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (basic ResNet block, GroupNorm)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode=PADDING)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode=PADDING)
        self.norm2 = nn.GroupNorm(groups, channels)
        # Zero-init of the last norm makes every block start as the identity (stable from scratch).
        nn.init.zeros_(self.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(x + self.norm2(self.conv2(y)))


class CompactCNN(nn.Module):
    """Residual CNN: stride 2 -> 4 -> 8, the stride-8 context upsampled and fused at stride 4.

    Input (B, 3, H, W) in [0, 1] with H, W multiples of 8; output (B, out_channels, H/4, W/4).
    """

    stride = 4
    input_multiple = 8

    def __init__(self, config: ExtractorConfig) -> None:
        super().__init__()
        c2, c4, c8 = config.channels
        g = config.groups
        self.out_channels = config.out_channels
        # Fixed input normalisation (mean 0.5, std 0.25) so that raw [0, 1] images can be fed.
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.stem = conv_norm_act(3, c2, 2, g)
        self.stage2 = nn.Sequential(*[ResidualBlock(c2, g) for _ in range(config.blocks[0])])
        self.down4 = conv_norm_act(c2, c4, 2, g)
        self.stage4 = nn.Sequential(*[ResidualBlock(c4, g) for _ in range(config.blocks[1])])
        self.down8 = conv_norm_act(c4, c8, 2, g)
        self.stage8 = nn.Sequential(*[ResidualBlock(c8, g) for _ in range(config.blocks[2])])
        self.fuse = nn.Sequential(
            nn.Conv2d(c4 + c8, config.out_channels, 1, bias=False), nn.GroupNorm(g, config.out_channels),
            nn.ReLU(inplace=True), nn.Conv2d(config.out_channels, config.out_channels, 3, 1, 1, padding_mode=PADDING),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.stem((image - self.mean) * 4.0))
        x4 = self.stage4(self.down4(x))
        x8 = self.stage8(self.down8(x4))
        up = nn.functional.interpolate(x8, size=x4.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x4, up], 1))


ExtractorFactory = Callable[[ExtractorConfig], nn.Module]
EXTRACTORS: dict[str, ExtractorFactory] = {}


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Decorator adding an extractor factory (config -> module) to `EXTRACTORS` under `name`."""

    def add(factory: ExtractorFactory) -> ExtractorFactory:
        if name in EXTRACTORS and EXTRACTORS[name] is not factory:
            raise ValueError(f"extractor name {name!r} is already registered")
        EXTRACTORS[name] = factory
        return factory

    return add


register_extractor("compact_cnn")(CompactCNN)


def load_state_dict_file(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """Read a plain state dict (or {'state_dict': ...}) from a local file with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file {path}: not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises several types for bad files)
        raise ValueError(f"{what} file {path}: not a loadable weights-only torch file ({exc})") from exc
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{what} file {path}: expected a state dict of tensors")
    return data


def build_extractor(config: ExtractorConfig) -> nn.Module:
    """Build the extractor named by `config.name`, loading `config.weights` if set.

    Returns a module following the contract in this module's docstring.
    """
    if config.name not in EXTRACTORS:
        raise ValueError(f"extractor name {config.name!r}: unknown; registered: {sorted(EXTRACTORS)}")
    module = EXTRACTORS[config.name](config)
    for attr in ("out_channels", "stride"):
        if not isinstance(getattr(module, attr, None), int):
            raise ValueError(f"extractor {config.name!r}: module must expose an integer `{attr}`")
    if config.weights is not None:
        state = load_state_dict_file(config.weights, what=f"extractor {config.name!r} weights")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"extractor weights file {config.weights}: does not fit extractor "
                             f"{config.name!r} ({str(exc).splitlines()[0]})") from exc
    return module
