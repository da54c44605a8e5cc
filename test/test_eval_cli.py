import json

from cvfm_ros.cli.main import main
from cvfm_ros.eval.benchmark import markdown_table


def test_eval_writes_the_documented_json(tmp_path):
    out = tmp_path / "e.json"
    assert main(["eval", "--benchmark", "synth-cross", "--matcher", "baseline", "--count", "3",
                 "--cache", str(tmp_path / "cache"), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    for key in ("mean", "median", "p95"):
        assert key in result["position_error_m"] and key in result["yaw_error_deg"]
    assert set(result["recall"]) == {"1m", "3m", "5m", "1deg", "3deg", "5deg"}
    assert set(result["match_precision"]) == {"5px", "10px", "15px"}
    assert result["count"] == 3 and len(result["per_sample"]["position_error_m"]) == 3
    assert result["settings"]["data"] == "synth-cross" and result["settings"]["prior_xy_m"] == 10.0
    # the draw is cached and reused: a second run gives the same per-sample errors
    assert main(["eval", "--benchmark", "synth-cross", "--matcher", "baseline", "--count", "3",
                 "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "f.json"), "--quiet"]) == 0
    again = json.loads((tmp_path / "f.json").read_text())
    assert again["per_sample"]["position_error_m"] == result["per_sample"]["position_error_m"]
    # the model card's table is rendered from these JSONs
    table = markdown_table([("baseline", result)]).splitlines()
    assert len(table) == 3 and table[2].startswith("| baseline | synth-cross (seed 0) | known | 3 |")
    assert f"{result['position_error_m']['median']:.2f}" in table[2]


def test_eval_rejects_bad_count(tmp_path):
    assert main(["eval", "--matcher", "baseline", "--count", "0", "--json", str(tmp_path / "x.json")]) == 2
