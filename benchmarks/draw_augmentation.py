"""Draw training pairs as rendered and as augmented towards real imagery (docs/images/augmentation.png).

    .venv/bin/python benchmarks/draw_augmentation.py

Rows: one panorama and one pinhole training pair; columns: rendered ground, augmented ground,
rendered aerial, augmented aerial (the inputs the matcher trains on, 256x128 and 128x128 at 0.4 m/px).
"""
import math

import cv2
import numpy as np

from cvfm_ros.data.synth import generate_world, make_pair
from cvfm_ros.data.synth.augment import AugmentConfig, augment_aerial, augment_ground
from cvfm_ros.geometry import MountedCamera, PinholeCamera


def main() -> None:
    world = generate_world("suburb", 5, size_m=160.0)
    pinhole = MountedCamera.forward_pinhole(PinholeCamera(128.0, 100.0, 127.5, 63.5, 256, 128), 2.2, math.radians(5))
    rows = []
    for seed, camera in ((3, None), (8, pinhole)):
        rng = np.random.default_rng(seed)
        s = make_pair(world, rng, camera="pano" if camera is None else "pinhole", ground_size=(256, 128),
                      aerial_size=128, mpp=0.4, camera_override=camera)
        g = augment_ground(s.ground, np.random.default_rng(seed), AugmentConfig(sky=1.0, canopies=1.0))
        a = augment_aerial(s.aerial, np.random.default_rng(seed), AugmentConfig(sky=1.0, canopies=1.0))
        gap = np.full((128, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([s.ground, gap, g, gap, s.aerial, gap, a], 1))
    canvas = np.concatenate([rows[0], np.full((4, rows[0].shape[1], 3), 255, np.uint8), rows[1]], 0)
    cv2.imwrite("docs/images/augmentation.png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
