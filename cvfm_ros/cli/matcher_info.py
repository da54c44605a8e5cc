"""`cvfm-ros matcher-info`: size, speed and a flat-world training smoke check of the matcher.

Prints the parameter count per part and the forward time per pair (torch, and ONNX Runtime with
--onnx); with --flat-world-steps N it also trains the matcher for N steps on random flat textured
worlds (cvfm_ros.model.toy) and reports pose errors on held-out pairs, next to the classical
baseline. That is a smoke check that the pipeline learns on the simplest consistent world, not a
benchmark: the real training and evaluation run on the synthetic data engine's scenes.
"""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("matcher-info", help="matcher size, forward time, flat-world smoke training")
    parser.add_argument("--config", help="YAML file holding a MatcherConfig (default: the built-in default)")
    parser.add_argument("--section", help="top-level section of --config holding the MatcherConfig")
    parser.add_argument("--tiny", action="store_true", help="use the tiny test configuration")
    parser.add_argument("--camera", choices=("panorama", "pinhole"), default="panorama")
    parser.add_argument("--camera-height", type=float, default=1.6, help="metres above base_link (default 1.6)")
    parser.add_argument("--mpp", type=float, default=0.5, help="aerial metres per pixel (default 0.5)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="timed forward passes (default 5)")
    parser.add_argument("--onnx", help="also export to this ONNX file and time ONNX Runtime")
    parser.add_argument("--flat-world-steps", type=int, default=0, help="smoke-train for this many steps")
    parser.add_argument("--batch", type=int, default=4, help="smoke-training batch size")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--orientation", choices=("known", "unknown"), default="known",
                        help="known: prior yaw within +-10 deg; unknown: BEV at yaw 0, any yaw")
    parser.add_argument("--pose-warmup", type=int, default=0, help="steps over which the pose loss ramps up")
    parser.add_argument("--eval-pairs", type=int, default=32)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.set_defaults(func=run)


def _camera(kind: str, hw: tuple[int, int], height_m: float):
    import math

    from cvfm_ros.geometry import MountedCamera, PinholeCamera

    h, w = hw
    if kind == "panorama":
        return MountedCamera.panorama(w, h, height_m)
    # A 90-degree horizontal field of view, tilted 15 degrees down.
    f = (w / 2) / math.tan(math.radians(45))
    return MountedCamera.forward_pinhole(PinholeCamera(f, f, (w - 1) / 2, (h - 1) / 2, w, h), height_m, math.radians(15))


def _errors(pred, truth):
    import torch

    from cvfm_ros.geometry import wrap_angle

    err_m = (pred[:, :2] - truth[:, :2]).norm(dim=-1)
    err_deg = torch.rad2deg(wrap_angle(pred[:, 2] - truth[:, 2]).abs())
    return {
        "median_m": float(err_m.median()), "mean_m": float(err_m.mean()),
        "recall_1m": float((err_m < 1).float().mean()), "recall_3m": float((err_m < 3).float().mean()),
        "median_deg": float(err_deg.median()), "recall_5deg": float((err_deg < 5).float().mean()),
    }


def run(args: argparse.Namespace) -> int:
    import math
    from dataclasses import replace

    import torch

    from cvfm_ros.config import atomic_write_text, load_config
    from cvfm_ros.model import MatcherConfig, ViewBridgeMatcher, count_parameters
    from cvfm_ros.model.toy import flat_world_batch, tiny_matcher_config

    if args.threads < 1 or args.repeat < 1 or args.batch < 1 or args.mpp <= 0:
        raise ValueError("--threads, --repeat, --batch and --mpp must be positive")
    torch.set_num_threads(args.threads)
    if args.tiny:
        config = tiny_matcher_config()
    elif args.config:
        config = load_config(MatcherConfig, args.config, args.section)
    else:
        config = MatcherConfig()
    if args.orientation == "unknown":
        config = replace(config, use_prior_yaw=False)
    camera = _camera(args.camera, config.ground_hw, args.camera_height)
    torch.manual_seed(0)
    model = ViewBridgeMatcher(config, camera)
    results: dict = {"parameters": count_parameters(model), "threads": args.threads, "camera": args.camera}
    print("parameters:", ", ".join(f"{k} {v:,}" for k, v in results["parameters"].items()))

    half_patch = config.aerial_hw[0] * args.mpp / 2
    offset = half_patch / 4
    yaw_noise = math.radians(10.0) if args.orientation == "known" else math.pi

    def sample(batch_size: int, seed: int):
        return flat_world_batch(batch_size, config.aerial_hw, args.mpp, camera, offset,
                                config.lifting.bev_cells, yaw_noise, seed=seed)

    batch1, _ = sample(1, 12345)
    _forward_times(model, batch1, args, results)
    if args.flat_world_steps > 0:
        _flat_world_run(model, sample, camera, config, args, results)
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0


def _forward_times(model, batch1: dict, args: argparse.Namespace, results: dict) -> None:
    """Median forward time per pair in torch and (with --onnx) ONNX Runtime into `results`."""
    import time

    import torch

    from cvfm_ros.model import OnnxMatcher, export_onnx

    model.eval()
    with torch.no_grad():
        model(batch1)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            model(batch1)
            times.append(time.perf_counter() - start)
    results["torch_forward_ms"] = 1000 * sorted(times)[len(times) // 2]
    print(f"torch forward per pair: {results['torch_forward_ms']:.1f} ms (median of {args.repeat}, "
          f"{args.threads} threads)")
    if args.onnx:
        export_onnx(model, args.onnx, args.mpp)
        session = OnnxMatcher(args.onnx, threads=args.threads)
        feeds = dict(batch1)
        session(feeds)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            session(feeds)
            times.append(time.perf_counter() - start)
        results["onnx_forward_ms"] = 1000 * sorted(times)[len(times) // 2]
        print(f"ONNX Runtime forward per pair: {results['onnx_forward_ms']:.1f} ms")


def _flat_world_run(model, sample, camera, config, args: argparse.Namespace, results: dict) -> None:
    """Train on flat textured worlds for --flat-world-steps and score on held-out ones (and the
    classical baseline on the same pairs) into `results`."""
    import time

    import torch

    from cvfm_ros.model import BaselineConfig, ClassicalBaseline, LossConfig, ViewBridgeLoss, ground_truth_assignment

    model.train()
    loss_fn = ViewBridgeLoss(LossConfig(pose_warmup_steps=args.pose_warmup))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.flat_world_steps, pct_start=0.1)
    start = time.perf_counter()
    for step in range(args.flat_world_steps):
        batch, targets = sample(args.batch, 1000 + step)
        terms = loss_fn(model, model(batch), targets, step=step)
        opt.zero_grad()
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        if step % max(1, args.flat_world_steps // 10) == 0 or step == args.flat_world_steps - 1:
            print(f"step {step}: " + ", ".join(f"{k} {float(v.detach()):.3f}" for k, v in terms.items()), flush=True)
    results["train_s"] = time.perf_counter() - start
    model.eval()
    batch, targets = sample(args.eval_pairs, 7)
    with torch.no_grad():
        out = model(batch)
    gt = ground_truth_assignment(model, out, targets)
    positive = gt["row_target"] < out["match_prob"].shape[2]
    top1 = (out["match_prob"].argmax(-1) == gt["row_target"])[positive].float().mean()
    results["matcher"] = dict(_errors(out["pose"], targets["pose"]), valid=float(out["valid"].float().mean()),
                              cell_top1=float(top1))
    if out["valid"].any():
        results["matcher_valid_only"] = _errors(out["pose"][out["valid"]], targets["pose"][out["valid"]])
    print("matcher on held-out flat worlds:", json.dumps(results["matcher"]))
    if "matcher_valid_only" in results:
        print("  on the pairs it calls valid:", json.dumps(results["matcher_valid_only"]))
    if args.orientation == "known":
        template = int(min(config.aerial_hw) * 0.75)
        baseline = ClassicalBaseline(BaselineConfig(ground_hw=config.ground_hw, aerial_hw=config.aerial_hw,
                                                    template_px=template), camera)
        bout = baseline(batch)
        results["baseline"] = dict(_errors(bout["pose"], targets["pose"]), valid=float(bout["valid"].float().mean()))
        print("baseline on the same pairs:", json.dumps(results["baseline"]))
