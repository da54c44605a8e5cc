"""Which frozen backbone's features survive the appearance changes between synthetic and real?

    .venv/bin/python benchmarks/backbone_probe.py [--pairs 24] [--json out/backbone_probe.json]

For generated pairs of the unseen styles, each backbone's frozen multi-scale maps (upsampled to
stride 4, L2-normalised per scale, concatenated; no trained head) of the rendered image are
compared by cosine with those of the same image after the training augmentation
(data/synth/augment.py: sky, texture, canopies, shadows, occluders, exposure, colour, blur,
noise, JPEG), for the ground and the aerial branch separately; reported: the share of stride-4
cells whose most similar cell in the augmented image is itself (within one cell) and the median
rank of the true cell. A training-free proxy of appearance invariance; random weights are the
floor. (Cross-view agreement needs the matcher's BEV lifting, so it is not probed here: raw
ground-pixel against aerial-cell similarity is at chance for every backbone.)
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cvfm_ros.data.synth import generate_world, make_pair
from cvfm_ros.data.synth.augment import AugmentConfig, augment_aerial, augment_ground
from cvfm_ros.model.pretrained import EfficientNetLite0Backbone, XFeatBackbone


def dense(backbone, image: np.ndarray) -> torch.Tensor:
    """(C, H/4, W/4) L2-normalised multi-scale features of an (H, W, 3) uint8 image."""
    x = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()[None] / 255
    size = (image.shape[0] // 4, image.shape[1] // 4)
    with torch.no_grad():
        maps = [torch.nn.functional.interpolate(m, size=size, mode="bilinear", align_corners=False)
                for m in backbone.features(x)]
    return torch.cat([torch.nn.functional.normalize(m, dim=1) for m in maps], 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--json", default="out/backbone_probe.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    backbones = {"efficientnet_lite0 (ImageNet)": EfficientNetLite0Backbone(True).eval(),
                 "xfeat (MegaDepth matching)": XFeatBackbone(True).eval(),
                 "efficientnet_lite0, random weights": EfficientNetLite0Backbone(False).eval()}
    stats = {(name, view): {"top1": [], "rank": []} for name in backbones for view in ("ground", "aerial")}
    world = None
    for i in range(args.pairs):
        if i % 8 == 0:
            world = generate_world(["campus", "desert"][(i // 8) % 2], 900 + i // 8, size_m=160.0)
        rng = np.random.default_rng([77, i])
        s = make_pair(world, rng, camera="pano", ground_size=(256, 128), aerial_size=128, mpp=0.4)
        views = {"ground": (s.ground, augment_ground(s.ground, rng, AugmentConfig())),
                 "aerial": (s.aerial, augment_aerial(s.aerial, rng, AugmentConfig()))}
        for name, backbone in backbones.items():
            for view, (clean, changed) in views.items():
                a, b = dense(backbone, clean), dense(backbone, changed)
                c, h, w = a.shape
                sim = a.reshape(c, -1).T @ b.reshape(c, -1)  # (cells, cells)
                own = torch.arange(h * w)
                rank = (sim > sim[own, own][:, None]).sum(1).numpy()
                best = sim.argmax(1).numpy()
                near = (np.abs(best // w - own.numpy() // w) <= 1) & (np.abs(best % w - own.numpy() % w) <= 1)
                stats[(name, view)]["top1"].extend(near.tolist())
                stats[(name, view)]["rank"].extend(rank.tolist())
    result = {f"{name}, {view}": {"top1_within_1_cell": float(np.mean(v["top1"])),
                                  "median_rank": float(np.median(v["rank"])), "cells": len(v["rank"])}
              for (name, view), v in stats.items()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    for name, r in result.items():
        print(f"{name:46s} top-1 within 1 cell {r['top1_within_1_cell']:.1%}, median rank {r['median_rank']:.0f}")


if __name__ == "__main__":
    main()
