"""Draw a generated pair with some of its pixel-level correspondences (docs/images/synth_pair.png).

    .venv/bin/python benchmarks/draw_synth_pair.py
"""
import cv2
import numpy as np

from cvfm_ros.data.synth import generate_world, make_pair


def main() -> None:
    world = generate_world("suburb", 5, size_m=192.0)
    rng = np.random.default_rng(3)
    s = make_pair(world, rng, camera="pano", ground_size=(512, 256), aerial_size=256, mpp=0.2)
    canvas = np.full((256 + 8 + 256, 512, 3), 255, np.uint8)
    canvas[:256] = s.ground
    canvas[264:, 128:384] = s.aerial
    vis = np.argwhere(s.visible)
    colors = cv2.applyColorMap(np.linspace(0, 255, 40).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    for k, (v, u) in enumerate(vis[rng.choice(len(vis), 40, replace=False)]):
        a = s.aerial_uv[v, u]
        p, q = (int(u), int(v)), (int(round(a[0])) + 128, int(round(a[1])) + 264)
        color = tuple(int(c) for c in colors[k])
        cv2.line(canvas, p, q, color, 1, cv2.LINE_AA)
        cv2.circle(canvas, p, 3, color, -1)
        cv2.circle(canvas, q, 3, color, -1)
    cv2.imwrite("docs/images/synth_pair.png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
