"""Evaluate the shipped matcher, its ablations and the classical baseline with `cvfm-ros eval`, and
write the results table into docs/MODEL_CARD.md (between its eval-table markers).

    .venv/bin/python benchmarks/model_card.py [--count 200] [--ablation-steps 600]

Every number in the table comes from an eval JSON written by `cvfm-ros eval` in this run (kept
under --json-dir, per-sample errors included); nothing is typed in.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from cvfm_ros.eval.benchmark import markdown_table
from cvfm_ros.model import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- eval-table:begin -->", "<!-- eval-table:end -->"
REAL_BEGIN, REAL_END = "<!-- real-table:begin -->", "<!-- real-table:end -->"
REAL_PAIRS = REPO.parent / "shared" / "data" / "real" / "pairs.json"
RIG_BEGIN, RIG_END = "<!-- rig-table:begin -->", "<!-- rig-table:end -->"
SEQUENTIAL_FRAMES = 10


FULL_BUDGET_STEPS = 2500  # stage 1 of the shipped model (config/train_synth.yaml)


def entries(ablation_steps: int, runs: Path) -> list[tuple[str, str, list[str]]]:
    """(label, json name, extra `cvfm-ros eval` arguments)."""
    ablate = lambda v: str(runs / v / f"step_{ablation_steps}.pt")  # noqa: E731
    finished = lambda v: str(runs / v / "last.pt")  # noqa: E731
    return [
        ("**ViewBridge, shipped weights**", "model_cross", ["--matcher", "model"]),
        ("ViewBridge, shipped weights, 18 yaw hypotheses", "model_cross_unknown",
         ["--matcher", "model", "--orientation", "unknown", "--yaw-step", "20"]),
        ("ViewBridge, shipped weights, one pass at the prior yaw", "model_cross_unknown_one_pass",
         ["--matcher", "model", "--orientation", "unknown", "--yaw-step", "0"]),
        ("ViewBridge, shipped weights", "model_same", ["--matcher", "model", "--benchmark", "synth-same"]),
        ("ViewBridge, shipped weights, pinhole 90°", "model_cross_pinhole", ["--matcher", "model", "--camera", "pinhole"]),
        (f"ViewBridge, {ablation_steps} steps", "ablate_full", ["--matcher", "model", "--weights", ablate("full")]),
        (f"− Surface Model, {ablation_steps} steps", "ablate_no_surface",
         ["--matcher", "model", "--weights", ablate("no_surface")]),
        (f"− SimRefiner, {ablation_steps} steps", "ablate_no_simrefiner",
         ["--matcher", "model", "--weights", ablate("no_simrefiner")]),
        (f"ViewBridge, stage 1 only, {FULL_BUDGET_STEPS} steps", "full_budget_full",
         ["--matcher", "model", "--weights", finished("full")]),
        (f"− Surface Model, {FULL_BUDGET_STEPS} steps", "full_budget_no_surface",
         ["--matcher", "model", "--weights", finished("no_surface")]),
        (f"− SimRefiner, {FULL_BUDGET_STEPS} steps", "full_budget_no_simrefiner",
         ["--matcher", "model", "--weights", finished("no_simrefiner")]),
        ("classical baseline (BEV NCC)", "baseline_cross", ["--matcher", "baseline"]),
        ("classical baseline (BEV NCC)", "baseline_cross_unknown", ["--matcher", "baseline", "--orientation", "unknown"]),
        ("classical baseline (BEV NCC)", "baseline_same", ["--matcher", "baseline", "--benchmark", "synth-same"]),
        ("classical baseline (BEV NCC), pinhole 90°", "baseline_cross_pinhole",
         ["--matcher", "baseline", "--camera", "pinhole"]),
    ]


def real_entries(others: list[str]) -> list[tuple[str, str, list[str]]]:
    """Rows of the real-pair table (`cvfm-ros eval --real`): label, json name, extra arguments."""
    rows = [("**ViewBridge, shipped weights**", "real_model", ["--matcher", "model"])]
    for weights in others:
        rows.append((f"ViewBridge, `{Path(weights).name}`", f"real_{Path(weights).stem}",
                     ["--matcher", "model", "--weights", weights]))
    return rows + [("classical baseline (BEV NCC)", "real_baseline", ["--matcher", "baseline"])]


def pinhole_entries(others: list[str]) -> list[tuple[str, str, list[str]]]:
    """Synthetic pinhole rows next to the real-pair table (90° FOV, synth-cross, orientation known)."""
    rows = [("ViewBridge, shipped weights", "pinhole_model", ["--matcher", "model"])]
    rows += [(f"ViewBridge, `{Path(w).name}`", f"pinhole_{Path(w).stem}", ["--matcher", "model", "--weights", w])
             for w in others]
    return rows + [("classical baseline (BEV NCC)", "pinhole_baseline", ["--matcher", "baseline"])]


def rig_entries(weights: list[str]) -> list[tuple[str, str, list[str]]]:
    """Rows of the rig and sequential-BEV table (issue 14) for each weights file: a 4-pinhole rig,
    and a single pinhole with SEQUENTIAL_FRAMES past frames fused."""
    rows = []
    for w in weights:
        rows += [(f"`{Path(w).name}`, 4-pinhole rig", f"rig_{Path(w).stem}", ["--weights", w, "--camera", "rig"]),
                 (f"`{Path(w).name}`, pinhole + sequential BEV (K = {SEQUENTIAL_FRAMES})", f"seq_{Path(w).stem}",
                  ["--weights", w, "--camera", "pinhole", "--sequential", str(SEQUENTIAL_FRAMES)])]
    return rows


def real_table(rows: list[tuple[str, dict]]) -> str:
    """Markdown table of real-pair eval JSONs, with the issue's targets as the last row."""
    lines = ["| matcher | draws | median / mean (m) | R@1/3/5 m | better than prior | yaw median (°) "
             "| valid fixes | largest valid error | NEES median (valid) | ms/pair |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, r in rows:
        p, rec, v = r["position_error_m"], r["recall"], r["valid"]
        worst = "—" if v["max_error_m"] is None else f"{v['max_error_m']:.2f} m"
        lines.append(f"| {label} | {r['count']} | {p['median']:.2f} / {p['mean']:.2f} | {rec['1m']:.0%} / "
                     f"{rec['3m']:.0%} / {rec['5m']:.0%} | {r['better_than_prior']:.0%} | "
                     f"{r['yaw_error_deg']['median']:.2f} | {v['count']} | {worst} | "
                     f"{'—' if v.get('nees_median') is None else format(v['nees_median'], '.2f')} | {r['ms_per_pair']:.0f} |")
    lines.append("| target (issue 11) | 56 | ≤ 3.00 / — | ≥ 30 % / — / — | ≥ 90 % | ≤ 3.00 | — | ≤ 3.00 m | about 2.37 | — |")
    return "\n".join(lines)


def targets_table(results: dict[str, dict], ablation_steps: int) -> str:
    """Issue #4's targets against the measured values (cross-area test set)."""
    m, mu, b = results["model_cross"], results["model_cross_unknown"], results["baseline_cross"]
    med = lambda r: r["position_error_m"]["median"]  # noqa: E731
    rows = [
        ("median position error, orientation known", "≤ 0.50 m", f"{med(m):.2f} m", med(m) <= 0.5),
        ("mean position error, orientation known", "≤ 1.00 m", f"{m['position_error_m']['mean']:.2f} m",
         m["position_error_m"]["mean"] <= 1.0),
        ("recall@1 m, orientation known", "≥ 80 %", f"{m['recall']['1m']:.0%}", m["recall"]["1m"] >= 0.8),
        ("median yaw error, orientation known", "≤ 1.00°", f"{m['yaw_error_deg']['median']:.2f}°",
         m["yaw_error_deg"]["median"] <= 1.0),
        ("median position error, orientation unknown", "≤ 1.00 m", f"{med(mu):.2f} m", med(mu) <= 1.0),
        ("matching precision@5 px", "≥ 50 %", f"{m['match_precision']['5px']:.0%}", m["match_precision"]["5px"] >= 0.5),
        ("model median ≤ half the baseline's", f"≤ {0.5 * med(b):.2f} m", f"{med(m):.2f} m", med(m) <= 0.5 * med(b)),
        ("issue 11: median, orientation known, no worse than before", "≤ 0.40 m", f"{med(m):.2f} m", med(m) <= 0.4),
        ("issue 11: mean, orientation known, no worse than before", "≤ 0.70 m", f"{m['position_error_m']['mean']:.2f} m",
         m["position_error_m"]["mean"] <= 0.7),
    ]
    pin = results.get("model_cross_pinhole")
    if pin is not None:
        rows += [("issue 11: pinhole 90° median, orientation known", "≤ 0.60 m", f"{med(pin):.2f} m", med(pin) <= 0.6),
                 ("issue 11: pinhole 90° recall@1 m", "≥ 75 %", f"{pin['recall']['1m']:.0%}", pin["recall"]["1m"] >= 0.75)]
    for full_key, key, name in (("ablate_full", "ablate_no_surface", "− Surface Model"),
                                ("ablate_full", "ablate_no_simrefiner", "− SimRefiner"),
                                ("full_budget_full", "full_budget_no_surface", "− Surface Model"),
                                ("full_budget_full", "full_budget_no_simrefiner", "− SimRefiner")):
        full = results.get(full_key)
        budget = f"{ablation_steps if full_key == 'ablate_full' else FULL_BUDGET_STEPS} steps"
        what = f"{name} worse than the full model (same budget, {budget})"
        if full is None or key not in results:
            rows.append((what, "worse", "not measured", None))
        else:
            rows.append((what, f"> {med(full):.2f} m", f"{med(results[key]):.2f} m", med(results[key]) > med(full)))
    lines = ["| target (synth-cross, prior ±10 m, ±10°) | goal | measured | met |", "| --- | --- | --- | --- |"]
    verdict = {True: "yes", False: "**no**", None: "—"}
    lines += [f"| {name} | {goal} | {got} | {verdict[ok]} |" for name, goal, got, ok in rows]
    return "\n".join(lines)


def replace_between(text: str, begin: str, end: str, block: str, card: Path) -> str:
    """`text` with what lies between the markers `begin` and `end` replaced by `block`."""
    if begin not in text or end not in text:
        raise SystemExit(f"{card}: the markers {begin} / {end} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def run_eval(args: list[str], path: Path, reuse: bool) -> dict:
    """Run `cvfm-ros eval ARGS --json PATH` (unless `reuse` and PATH exists) and read its JSON."""
    if not (reuse and path.is_file()):
        cmd = [sys.executable, "-m", "cvfm_ros.cli.main", "eval", *args, "--json", str(path), "--quiet"]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation-steps", type=int, default=600, help="the step at which the runs are compared")
    parser.add_argument("--runs", default=str(REPO / "out" / "train"), help="where the ablation runs live")
    parser.add_argument("--json-dir", default=str(REPO / "out" / "model_card"))
    parser.add_argument("--card", default=str(REPO / "docs" / "MODEL_CARD.md"))
    parser.add_argument("--reuse", action="store_true", help="keep eval JSONs that already exist")
    parser.add_argument("--real", default=str(REAL_PAIRS), help="real-pair manifest ('' skips the real table)")
    parser.add_argument("--weights", nargs="*", default=[], help="other weights files for the real-pair and pinhole tables")
    parser.add_argument("--only-real", action="store_true",
                        help="regenerate only the real-pair and pinhole tables (the synthetic table stays)")
    parser.add_argument("--only-rigs", action="store_true",
                        help="regenerate only the rig and sequential-BEV table for --weights (issue 14)")
    args = parser.parse_args()
    if args.only_rigs:
        write_rig_table(args)
        return
    out = Path(args.json_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, results = [], {}
    missing = []
    for label, name, extra in ([] if args.only_real else entries(args.ablation_steps, Path(args.runs))):
        if "--weights" in extra:
            weights = Path(extra[extra.index("--weights") + 1])
            if not weights.is_file():
                missing.append(f"{label} ({weights} not found: train it with the commands above)")
                continue
            if weights.name == "last.pt" and read_checkpoint(weights)["extra"].get("step") != FULL_BUDGET_STEPS:
                missing.append(f"{label} ({weights} has not reached step {FULL_BUDGET_STEPS} yet)")
                continue
        results[name] = run_eval(["--benchmark", "synth-cross", "--count", str(args.count), "--seed", str(args.seed),
                                  *extra], out / f"{name}.json", args.reuse)
        rows.append((label, results[name]))
    real_rows = []
    if args.real and Path(args.real).is_file():
        for label, name, extra in real_entries(args.weights):
            real_rows.append((label, run_eval(["--real", args.real, "--seed", str(args.seed), *extra],
                                              out / f"{name}.json", args.reuse)))
    pinhole_rows = [(label, run_eval(["--benchmark", "synth-cross", "--camera", "pinhole", "--count", str(args.count),
                                      "--seed", str(args.seed), *extra], out / f"{name}.json", args.reuse))
                    for label, name, extra in pinhole_entries(args.weights)]
    card = Path(args.card)
    text = card.read_text()
    if real_rows:
        where = (f"Generated by `benchmarks/model_card.py` with `cvfm-ros eval --real {Path(args.real).name} --seed "
                 f"{args.seed}` (7 real pairs x 8 priors) on {datetime.date.today().isoformat()}: "
                 f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU used.")
        pinhole = (f"Synthetic pinhole cameras (`cvfm-ros eval --benchmark synth-cross --camera pinhole --count "
                   f"{args.count} --seed {args.seed}`: 90° horizontal FOV, pitched 0–8° down; orientation known):\n\n"
                   f"{markdown_table(pinhole_rows)}")
        text = replace_between(text, REAL_BEGIN, REAL_END, f"{where}\n\n{real_table(real_rows)}\n\n{pinhole}", card)
    if args.only_real:
        card.write_text(text)
        print(f"wrote the real-pair and pinhole tables into {card}")
        return
    where = (f"Generated by `benchmarks/model_card.py --count {args.count} --seed {args.seed} --ablation-steps "
             f"{args.ablation_steps}` on {datetime.date.today().isoformat()}: {platform.machine()}, "
             f"{os.cpu_count()} CPUs, no GPU used; ms/pair is torch on the CPU, one pair per call (all of a "
             f"pair's runs for the yaw-hypotheses row).")
    block = f"{where}\n\n{markdown_table(rows)}\n\n{targets_table(results, args.ablation_steps)}"
    if missing:
        block += "\n\nRows not evaluated: " + "; ".join(missing) + "."
    card.write_text(replace_between(text, BEGIN, END, block, card))
    print(f"wrote the table into {card}")


def write_rig_table(args: argparse.Namespace) -> None:
    """The rig / sequential-BEV table between the rig-table markers (synth-cross, orientation known)."""
    out = Path(args.json_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [(label, run_eval(["--benchmark", "synth-cross", "--count", str(args.count), "--seed", str(args.seed), *extra],
                             out / f"{name}.json", args.reuse)) for label, name, extra in rig_entries(args.weights)]
    card = Path(args.card)
    where = (f"Generated by `benchmarks/model_card.py --only-rigs --count {args.count} --seed {args.seed} --weights "
             f"{' '.join(Path(w).name for w in args.weights)}` on {datetime.date.today().isoformat()}: "
             f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU used; ms/pair is torch on the CPU, the "
             f"current frame's run only (a session has the past frames' BEVs from their own runs).")
    card.write_text(replace_between(card.read_text(), RIG_BEGIN, RIG_END, f"{where}\n\n{markdown_table(rows)}", card))
    print(f"wrote the rig table into {card}")


if __name__ == "__main__":
    main()
