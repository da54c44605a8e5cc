"""`cvfm-ros localize --ground IMG --aerial IMG --mpp M`: localize one ground image against one
aerial image, print the pose and write a picture of the matches (the first thing to try on your
own pair).

Convention: the pose is base_link (x east, y north, metres; yaw CCW from east, degrees in the
printout) relative to the aerial image's centre pixel; the aerial image is north-up.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("localize", help="localize one ground image against one aerial image")
    parser.add_argument("--ground", required=True, help="ground image: an equirectangular panorama (2:1), or a "
                                                        "pinhole image with --camera-info")
    parser.add_argument("--aerial", required=True, help="north-up aerial image")
    parser.add_argument("--mpp", required=True, type=float, help="metres per pixel of the aerial image")
    parser.add_argument("--camera-info", default="", help="pinhole calibration YAML (ROS camera_calibration "
                                                          "format: image_width, camera_matrix, distortion_*)")
    parser.add_argument("--height", type=float, default=2.0, help="camera height above the ground, metres")
    parser.add_argument("--pitch", type=float, default=0.0, help="pinhole camera pitch down, degrees")
    parser.add_argument("--prior", default="", help="'x,y,yaw_deg' relative to the aerial centre (default: the "
                                                    "centre, heading unknown: a yaw search runs)")
    parser.add_argument("--matcher", default="model", choices=["model", "baseline"])
    parser.add_argument("--weights", default="", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    parser.add_argument("--out", default="localize_matches.png", help="picture of the matches (PNG)")
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    parser.set_defaults(func=run)


def read_rgb(path: str, argument: str):
    """An image file -> (H, W, 3) uint8 RGB; ValueError naming the argument."""
    import cv2

    if not Path(path).is_file():
        raise ValueError(f"{argument}: {path} not found")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{argument}: {path} is not an image OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_camera_info(path: str, height_m: float, pitch_deg: float):
    """A ROS camera_calibration YAML -> MountedCamera looking forward; ValueError names the key."""
    from ..config import load_yaml
    from ..geometry import MountedCamera, PinholeCamera

    data = load_yaml(path)
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
        k = [float(v) for v in data["camera_matrix"]["data"]]
        d = [float(v) for v in data.get("distortion_coefficients", {}).get("data", [])] or [0.0] * 5
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--camera-info {path}: expected image_width, image_height, camera_matrix.data "
                         f"(and optional distortion_coefficients.data) ({type(exc).__name__}: {exc})") from exc
    if len(k) != 9:
        raise ValueError(f"--camera-info {path}: camera_matrix.data: expected 9 values, got {len(k)}")
    camera = PinholeCamera(k[0], k[4], k[2], k[5], width, height, tuple(d))
    return MountedCamera.forward_pinhole(camera, height_m, math.radians(pitch_deg))


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..eval.visualize import draw_matches
    from ..runtime.localizer import Localizer

    if not (math.isfinite(args.mpp) and args.mpp > 0):
        raise ValueError(f"--mpp: expected positive metres per pixel, got {args.mpp}")
    ground = read_rgb(args.ground, "--ground")
    aerial = read_rgb(args.aerial, "--aerial")
    camera = read_camera_info(args.camera_info, args.height, args.pitch) if args.camera_info else None
    if camera is not None and (camera.camera.width, camera.camera.height) != (ground.shape[1], ground.shape[0]):
        raise ValueError(f"--camera-info: {camera.camera.width}x{camera.camera.height}, but --ground is "
                         f"{ground.shape[1]}x{ground.shape[0]}")
    prior = None
    if args.prior:
        try:
            x, y, yaw_deg = (float(v) for v in args.prior.split(","))
        except ValueError:
            raise ValueError(f"--prior: expected 'x,y,yaw_deg', got {args.prior!r}") from None
        prior = (x, y, math.radians(yaw_deg))
    localizer = Localizer.from_weights(args.weights or None, matcher=args.matcher, backend=args.backend)
    result = localizer.localize_pair(ground, aerial, args.mpp, camera=camera, prior=prior,
                                     camera_height_m=args.height)
    summary = {"status": result.status.name, "reason": result.reason, "backend": localizer.backend_name}
    if result.pose is not None:
        sigma = np.sqrt(np.clip(np.diag(result.covariance), 0.0, None))
        summary.update({"x_m": float(result.pose[0]), "y_m": float(result.pose[1]),
                        "yaw_deg": math.degrees(float(result.pose[2])), "sigma_x_m": float(sigma[0]),
                        "sigma_y_m": float(sigma[1]), "sigma_yaw_deg": math.degrees(float(sigma[2])),
                        "matches": len(result.matches), "time_ms": result.timings_ms.get("total")})
        print(f"{result.status.name}: x {result.pose[0]:.2f} m, y {result.pose[1]:.2f} m (east, north of the aerial "
              f"centre), yaw {summary['yaw_deg']:.1f} deg (CCW from east); 1-sigma {sigma[0]:.2f} / {sigma[1]:.2f} m, "
              f"{summary['sigma_yaw_deg']:.1f} deg; {len(result.matches)} matches"
              + (f" ({result.reason})" if result.reason else ""))
    else:
        print(f"{result.status.name}: {result.reason}")
    if result.aerial_image is not None:
        from ..config import atomic_write_bytes

        canvas = draw_matches(ground, result.aerial_image, result.matches)
        atomic_write_bytes(args.out, cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))[1].tobytes())
        print(f"matches: {args.out}")
    if args.json:
        from ..config import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    return 0 if result.ok else 1
