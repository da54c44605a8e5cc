"""The user API (`from cvfm_ros import Localizer`, five lines) and `cvfm-ros localize` on one
synthetic pair written as ordinary image files (exact truth: a sign or frame error fails)."""
import json
import math

import cv2
import numpy as np
import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.data.synth import generate_world, make_pair

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    world = generate_world("suburb", 7, size_m=160.0)
    s = make_pair(world, np.random.default_rng(100), camera="pano", ground_size=(512, 256), aerial_size=320,
                  mpp=0.25, max_offset_frac=0.1)
    cv2.imwrite(str(folder / "ground.png"), cv2.cvtColor(s.ground, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "aerial.png"), cv2.cvtColor(s.aerial, cv2.COLOR_RGB2BGR))
    truth = np.array([s.pose[0] - s.aerial_center[0], s.pose[1] - s.aerial_center[1], s.pose[2]])
    return folder, s, truth


def test_five_line_api(pair):
    folder, s, truth = pair
    from cvfm_ros import Localizer

    localizer = Localizer.from_weights(backend="torch")
    result = localizer.localize_pair(s.ground, s.aerial, aerial_mpp=0.25, camera_height_m=s.camera.height_m,
                                     prior=(0.0, 0.0, truth[2] + math.radians(5)))
    assert result.ok, result.reason
    assert math.hypot(*(result.pose[:2] - truth[:2])) < 1.5
    assert abs(math.remainder(result.pose[2] - truth[2], 2 * math.pi)) < math.radians(3)


def test_localize_command_prints_the_pose_and_draws_the_matches(pair, capsys):
    folder, s, truth = pair
    args = ["localize", "--ground", str(folder / "ground.png"), "--aerial", str(folder / "aerial.png"),
            "--mpp", "0.25", "--height", f"{s.camera.height_m}", "--backend", "torch",
            "--prior", f"0,0,{math.degrees(truth[2]) - 4}", "--out", str(folder / "matches.png"),
            "--json", str(folder / "result.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: x ") and "matches.png" in out
    result = json.loads((folder / "result.json").read_text())
    assert math.hypot(result["x_m"] - truth[0], result["y_m"] - truth[1]) < 1.5
    picture = cv2.imread(str(folder / "matches.png"))
    assert picture is not None and picture.shape[0] > 100


def test_localize_command_names_bad_arguments(pair, capsys, tmp_path):
    folder, _, _ = pair
    base = ["localize", "--ground", str(folder / "ground.png"), "--aerial", str(folder / "aerial.png")]
    assert main([*base, "--mpp", "0"]) == 2
    assert "--mpp" in capsys.readouterr().err
    assert main(["localize", "--ground", str(tmp_path / "none.png"), "--aerial", str(folder / "aerial.png"),
                 "--mpp", "0.25"]) == 2
    assert "--ground" in capsys.readouterr().err
    assert main([*base, "--mpp", "0.25", "--prior", "1,2"]) == 2
    assert "--prior" in capsys.readouterr().err
    (tmp_path / "cam.yaml").write_text("image_width: 640\nimage_height: 480\n")
    assert main([*base, "--mpp", "0.25", "--camera-info", str(tmp_path / "cam.yaml")]) == 2
    assert "camera_matrix" in capsys.readouterr().err
