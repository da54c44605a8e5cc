"""Throughput of the synthetic engine: panorama pairs per second on one core.

    .venv/bin/python benchmarks/bench_synth.py [--pairs 40] [--json out/bench_synth.json]

512x256 panoramas, 256x256 aerial patches at 0.2 m/px with dense correspondences; the world is
generated once and reused (its generation time is reported separately); warm-up excluded.
"""
import argparse
import json
import platform
import time

import numpy as np
import torch

from cvfm_ros.data.synth import generate_world, make_pair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--style", default="downtown")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import cv2
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    world = generate_world(args.style, 0, size_m=256.0)
    world_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    make_pair(world, rng)  # warm-up (builds the per-world render layers)
    t0 = time.perf_counter()
    for _ in range(args.pairs):
        make_pair(world, rng, camera="pano", ground_size=(512, 256), aerial_size=256, mpp=0.2)
    per_pair = (time.perf_counter() - t0) / args.pairs
    result = {"pairs_per_s": 1.0 / per_pair, "ms_per_pair": 1e3 * per_pair, "world_generation_s": world_s,
              "world": "256 m at 0.1 m", "machine": platform.platform(), "threads": 1}
    print(f"{result['pairs_per_s']:.2f} pano pairs/s ({result['ms_per_pair']:.0f} ms each) on one core; "
          f"world generation {world_s:.2f} s (amortised over the pairs drawn from it)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
