import math

import numpy as np
import pytest

from cvfm_ros.eval.metrics import TumTrajectory, match_precision, nees, recall, summarize, yaw_error_deg
from cvfm_ros.eval.visualize import draw_matches
from cvfm_ros.runtime.result import Matches


def test_errors_and_summaries():
    assert yaw_error_deg(np.array([math.pi - 0.01]), np.array([-math.pi + 0.01]))[0] == pytest.approx(math.degrees(0.02))
    s = summarize(np.array([1.0, 2.0, 3.0, 10.0]))
    assert s["mean"] == 4.0 and s["median"] == 2.5 and s["max"] == 10.0
    assert recall(np.array([0.5, 2.0, 4.0, 9.0]), (1, 3, 5)) == [0.25, 0.5, 0.75]
    assert math.isnan(summarize(np.array([]))["mean"])


def test_nees_of_unit_covariance():
    e = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    assert nees(e, np.stack([np.eye(3)] * 2)).tolist() == [1.0, 4.0]


def test_match_precision_top_k():
    true = np.zeros((40, 2))
    pred = np.zeros((40, 2))
    pred[:10, 0] = 7.0  # 10 matches off by 7 px
    scores = np.arange(40, dtype=float)[::-1].copy()  # the first are the most confident
    assert match_precision(pred, true, scores, top_k=30) == pytest.approx([20 / 30, 1.0, 1.0])
    true[39] = np.nan  # no truth counts as wrong (but it is not in the top 30 here)
    assert match_precision(pred, true, scores, top_k=40)[2] == pytest.approx(39 / 40)


def test_tum_roundtrip(tmp_path):
    poses = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, -3.0]])
    traj = TumTrajectory.from_planar([0.1, 0.2], poses)
    (tmp_path / "t.txt").write_text(traj.to_text())
    back = TumTrajectory.read(tmp_path / "t.txt")
    assert np.allclose(back.planar(), poses, atol=1e-6) and np.allclose(back.stamps, [0.1, 0.2])
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="8 columns"):
        TumTrajectory.read(tmp_path / "bad.txt")


def test_draw_matches_shape():
    m = Matches(np.array([[10.0, 10.0]]), np.array([[5.0, 5.0]]), np.zeros((1, 2)), np.array([1.0]))
    out = draw_matches(np.zeros((128, 256, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), m, height=128)
    assert out.shape == (128, 256 + 128, 3) and out.max() > 0
