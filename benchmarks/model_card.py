"""Evaluate the shipped matcher, its ablations and the classical baseline with `cvfm-ros eval`, and
write the results table into docs/MODEL_CARD.md (between its eval-table markers).

    .venv/bin/python benchmarks/model_card.py [--count 200] [--ablation-steps 500]

Every number in the table comes from an eval JSON written by `cvfm-ros eval` in this run (kept
under --json-dir, per-sample errors included); nothing is typed in.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from cvfm_ros.eval.benchmark import markdown_table

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- eval-table:begin -->", "<!-- eval-table:end -->"


def entries(ablation_steps: int, runs: Path) -> list[tuple[str, str, list[str]]]:
    """(label, json name, extra `cvfm-ros eval` arguments)."""
    ablate = lambda v: str(runs / f"ablate_{ablation_steps}_{v}" / "last.pt")  # noqa: E731
    return [
        ("**ViewBridge, shipped weights**", "model_cross", ["--matcher", "model"]),
        ("ViewBridge, shipped weights", "model_cross_unknown", ["--matcher", "model", "--orientation", "unknown"]),
        ("ViewBridge, shipped weights", "model_same", ["--matcher", "model", "--benchmark", "synth-same"]),
        (f"ViewBridge, {ablation_steps} steps", "ablate_full", ["--matcher", "model", "--weights", ablate("full")]),
        (f"− Surface Model, {ablation_steps} steps", "ablate_no_surface",
         ["--matcher", "model", "--weights", ablate("no_surface")]),
        (f"− SimRefiner, {ablation_steps} steps", "ablate_no_simrefiner",
         ["--matcher", "model", "--weights", ablate("no_simrefiner")]),
        ("classical baseline (BEV NCC)", "baseline_cross", ["--matcher", "baseline"]),
        ("classical baseline (BEV NCC)", "baseline_cross_unknown", ["--matcher", "baseline", "--orientation", "unknown"]),
        ("classical baseline (BEV NCC)", "baseline_same", ["--matcher", "baseline", "--benchmark", "synth-same"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation-steps", type=int, default=500)
    parser.add_argument("--runs", default=str(REPO / "out" / "train"), help="where the ablation runs live")
    parser.add_argument("--json-dir", default=str(REPO / "out" / "model_card"))
    parser.add_argument("--card", default=str(REPO / "docs" / "MODEL_CARD.md"))
    parser.add_argument("--reuse", action="store_true", help="keep eval JSONs that already exist")
    args = parser.parse_args()
    out = Path(args.json_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, name, extra in entries(args.ablation_steps, Path(args.runs)):
        path = out / f"{name}.json"
        if not (args.reuse and path.is_file()):
            cmd = [sys.executable, "-m", "cvfm_ros.cli.main", "eval", "--benchmark", "synth-cross", "--count",
                   str(args.count), "--seed", str(args.seed), *extra, "--json", str(path), "--quiet"]
            print(" ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, cwd=REPO)
        rows.append((label, json.loads(path.read_text())))
    card = Path(args.card)
    text = card.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{card}: the markers {BEGIN} / {END} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    card.write_text(f"{head}{BEGIN}\n{markdown_table(rows)}\n{END}{tail}")
    print(f"wrote the table into {card}")


if __name__ == "__main__":
    main()
