"""`cvfm-ros eval`: matcher accuracy on held-out synthetic benchmarks (cvfm_ros/eval/benchmark.py) or on
real labelled pairs with `--real PAIRS.json` (cvfm_ros/eval/real_pairs.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .demo import DEFAULT_CACHE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a matcher on held-out synthetic pairs or real labelled pairs")
    parser.add_argument("--benchmark", default="synth-cross", choices=["synth-same", "synth-cross"])
    parser.add_argument("--real", default="", metavar="PAIRS.json",
                        help="evaluate on real labelled pairs listed in this manifest (format of "
                             "../shared/data/real/pairs.json) instead of a synthetic benchmark")
    parser.add_argument("--priors", type=int, default=8, help="with --real: prior draws per pair (protocol: 8)")
    parser.add_argument("--camera", default="panorama", choices=["panorama", "pinhole", "rig"],
                        help="synthetic benchmarks: the ground camera (pinhole: 90 deg horizontal FOV, looking forward; "
                             "rig: four such pinholes looking front, left, rear and right, lifted into one BEV)")
    parser.add_argument("--sequential", type=int, default=0, metavar="K",
                        help="synthetic benchmarks: each pair with K earlier frames of its camera (1.5 m apart along "
                             "the way it came), fused as a sequential BEV (model only; 0: off)")
    parser.add_argument("--matcher", default="model", choices=["model", "baseline"])
    parser.add_argument("--weights", default="", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--orientation", default="known", choices=["known", "unknown"],
                        help="known: prior yaw within ±10 deg; unknown: any yaw")
    parser.add_argument("--yaw-step", type=float, default=None,
                        help="the model runs at yaw hypotheses this many degrees apart where the prior yaw range "
                             "is wider than one step (orientation unknown); 0 = one run at the prior yaw "
                             "(default: the localizer's, 20)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="another draw of the same protocol")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE / "benchmarks"))
    parser.add_argument("--json", required=True, help="output JSON (summary, settings and per-sample errors)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..eval.benchmark import PRIOR_XY_M, benchmark_pairs, evaluate, write_json
    from ..model.matcher import DEFAULT_AERIAL_MPP
    from ..model.yaw_search import DEFAULT_STEP_DEG
    from ..runtime.localizer import build_matcher
    from ..runtime.settings import MatcherSettings

    if args.count <= 0:
        raise ValueError(f"--count: expected a positive number, got {args.count}")
    if not 0 <= args.sequential <= 20:
        raise ValueError(f"--sequential: expected 0 to 20 past frames, got {args.sequential}")
    if args.yaw_step is None:
        args.yaw_step = DEFAULT_STEP_DEG
    if not 0 <= args.yaw_step <= 180:
        raise ValueError(f"--yaw-step: expected degrees in [0, 180], got {args.yaw_step}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    matcher = build_matcher(MatcherSettings(kind=args.matcher, weights=args.weights)).eval()
    mpp = float(matcher.runtime_metadata.get("aerial_mpp", DEFAULT_AERIAL_MPP))
    if args.real:
        return _run_real(args, matcher, mpp)
    if args.orientation == "unknown" and args.matcher == "baseline":
        matcher.config = type(matcher.config)(**{**matcher.config.__dict__, "yaw_range_deg": 180.0})
    yaw_noise = 10.0 if args.orientation == "known" else 180.0
    files = benchmark_pairs(args.benchmark, args.seed, args.count, Path(args.cache), matcher.config.ground_hw,
                            matcher.config.aerial_hw[0], mpp, yaw_noise, camera=args.camera, history=args.sequential)
    result = evaluate(matcher, files, mpp, progress=not args.quiet, prior_yaw_range_deg=yaw_noise,
                      yaw_step_deg=args.yaw_step)
    result["settings"] = {"data": args.benchmark, "seed": args.seed, "matcher": args.matcher,
                          "weights": args.weights or "shipped", "orientation": args.orientation,
                          "prior_xy_m": PRIOR_XY_M, "prior_yaw_deg": yaw_noise, "aerial_mpp": mpp,
                          "yaw_step_deg": args.yaw_step, "camera": args.camera, "sequential": args.sequential,
                          "aerial_px": matcher.config.aerial_hw[0]}
    write_json(Path(args.json), result)
    p, y, r = result["position_error_m"], result["yaw_error_deg"], result["recall"]
    print(f"{args.matcher} on {args.benchmark} ({result['count']} pairs, orientation {args.orientation}): "
          f"position mean {p['mean']:.2f} m, median {p['median']:.2f} m, R@1/3/5m {r['1m']:.2f}/{r['3m']:.2f}/{r['5m']:.2f}; "
          f"yaw median {y['median']:.2f} deg; precision@5/10/15px {result['match_precision']['5px']:.2f}/"
          f"{result['match_precision']['10px']:.2f}/{result['match_precision']['15px']:.2f}; {result['ms_per_pair']:.0f} ms/pair")
    return 0


def _run_real(args: argparse.Namespace, matcher, mpp: float) -> int:
    from ..eval.benchmark import write_json
    from ..eval.real_pairs import PRIOR_YAW_DEG, evaluate_real, load_manifest

    pairs = load_manifest(args.real)
    # The real protocol's prior yaw is within +-10 deg: one hypothesis unless --yaw-step is below that.
    result = evaluate_real(matcher, pairs, mpp, priors=args.priors, seed=args.seed, progress=not args.quiet,
                           yaw_step_deg=args.yaw_step if args.yaw_step < 2 * PRIOR_YAW_DEG else 0.0)
    result["settings"] = {"data": f"real:{Path(args.real).name}", "seed": args.seed, "matcher": args.matcher,
                          "weights": args.weights or "shipped", "orientation": "known", "priors_per_pair": args.priors,
                          "prior_yaw_deg": PRIOR_YAW_DEG, "aerial_mpp": mpp, "aerial_px": matcher.config.aerial_hw[0]}
    write_json(Path(args.json), result)
    p, y, r, v = result["position_error_m"], result["yaw_error_deg"], result["recall"], result["valid"]
    worst = "none" if v["max_error_m"] is None else f"{v['max_error_m']:.2f} m"
    print(f"{args.matcher} on {result['pairs']} real pairs x {args.priors} priors ({result['count']} draws): "
          f"position median {p['median']:.2f} m, mean {p['mean']:.2f} m, R@1/3/5m {r['1m']:.2f}/{r['3m']:.2f}/{r['5m']:.2f}; "
          f"better than the prior {result['better_than_prior']:.0%}; yaw median {y['median']:.2f} deg; "
          f"valid {v['count']} (largest error {worst}); prior median {result['prior_error_m']['median']:.2f} m")
    return 0
