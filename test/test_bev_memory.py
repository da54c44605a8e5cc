"""The session's BEV memory (runtime/bev_memory.py; sequential BEV, issue 14): what a frame is
given of the frames before it, and when it is forgotten."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from cvfm_ros.geometry import MountedCamera
from cvfm_ros.runtime.bev_memory import BevMemory
from cvfm_ros.runtime.prior import PriorConfig
from cvfm_ros.runtime.result import LocalizationResult, Status
from cvfm_ros.runtime.session import LocalizationSession

SHAPES = {"memory_features": (1, 3, 2, 4, 4), "memory_valid": (1, 3, 4, 4), "memory_surface_height": (1, 3, 4, 4),
          "memory_relative_pose": (1, 3, 3), "memory_bev_yaw": (1, 3), "memory_pose_std": (1, 3, 2)}


def _bev(value: float, yaw: float = 0.0) -> dict:
    return {"features": np.full((2, 4, 4), value), "valid": np.ones((4, 4)), "surface_height": np.zeros((4, 4)),
            "bev_yaw": yaw}


def test_frames_come_newest_first_with_their_pose_and_its_uncertainty():
    noise = PriorConfig(odom_xy_noise_per_m=0.1, odom_yaw_noise_per_m_deg=1.0, odom_yaw_noise_per_s_deg=0.5)
    memory = BevMemory(3, max_age_s=2.5, odometry_noise=noise)
    for k in range(4):  # a robot driving 1 m per second along x, turning 0.1 rad per second
        memory.add(float(k), np.array([k * 1.0, 0.0, 0.1 * k]), k * 1.0, _bev(k, yaw=0.1 * k))
    assert len(memory) == 3  # the oldest went
    now = np.array([4.0, 0.0, 0.4])
    arrays = memory.inputs(4.0, now, 4.0, SHAPES)
    assert [float(arrays["memory_features"][0, s, 0, 0, 0]) for s in range(3)] == [3.0, 2.0, 0.0]  # age 3 s > 2.5 s
    assert not arrays["memory_valid"][0, 2].any()  # the empty slot
    # the frame one second ago sat 1 m behind, turned 0.1 rad less: in the current frame
    rel = arrays["memory_relative_pose"][0, 0]
    assert rel[2] == pytest.approx(-0.1, abs=1e-6)
    assert rel[0] == pytest.approx(-math.cos(0.4), abs=1e-5) and rel[1] == pytest.approx(math.sin(0.4), abs=1e-5)
    assert arrays["memory_bev_yaw"][0, 1] == pytest.approx(0.2)
    # 1-sigma grows with distance and time: 0.1 m per m; 1 deg per m + 0.5 deg per s
    assert arrays["memory_pose_std"][0, 0] == pytest.approx([0.1, math.radians(1.5)], rel=1e-5)
    assert arrays["memory_pose_std"][0, 1] == pytest.approx([0.2, math.radians(3.0)], rel=1e-5)
    with pytest.raises(ValueError, match="matcher.sequential_frames"):
        BevMemory(0, 1.0, noise)


class MemoryLocalizer:
    """Takes two past frames; returns each frame's BEV filled with its stamp and records the memory it got."""

    memory_frames = 2
    memory_shapes = {**SHAPES, **{k: (v[0], 2, *v[2:]) for k, v in SHAPES.items()}}
    config = SimpleNamespace(matcher=SimpleNamespace(sequential_max_age_s=10.0))

    def __init__(self):
        self.memories = []

    def localize(self, image, camera, prior, prior_cov, stamp, memory=None):
        self.memories.append(memory)
        result = LocalizationResult(stamp, Status.LOW_CONFIDENCE, "test", pose=prior, covariance=np.eye(3))
        result.frame_bev = _bev(stamp)
        return result


def test_the_session_feeds_each_frame_the_ones_before_and_forgets_them_on_a_restart():
    loc = MemoryLocalizer()
    session = LocalizationSession(loc)
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    session.seed(0.0, np.zeros(3), standing=True)
    for k in range(60):
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    for stamp in (1.0, 2.0, 3.0):
        session.on_image(image, stamp, cam)
    first, third = loc.memories[0], loc.memories[2]
    assert not first["memory_valid"].any()  # nothing before the first frame
    assert [float(third["memory_features"][0, s, 0, 0, 0]) for s in range(2)] == [2.0, 1.0]
    assert third["memory_relative_pose"][0, 0] == pytest.approx([-1.0, 0.0, 0.0], abs=1e-6)
    for k in range(20):  # the bag restarts: odometry poses before the jump mean nothing now
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    session.on_image(image, 1.5, cam)
    assert not loc.memories[-1]["memory_valid"].any()


def test_replay_with_sequential_bev(tiny_drive, tmp_path):
    """The shipped model with a 4-frame BEV memory over a generated drive, on ONNX Runtime (the
    memory is part of the exported graph); it localizes as it does without one."""
    from cvfm_ros.cli.main import main

    out = tmp_path / "seq"
    assert main(["replay", str(tiny_drive.root), "--out", str(out), "--backend", "onnxruntime", "--rate", "2",
                 "--sequential", "4", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["raw"]["count"] >= 4 and metrics["raw"]["median_m"] < 1.0
    assert "onnxruntime" in (out / "report.html").read_text()
