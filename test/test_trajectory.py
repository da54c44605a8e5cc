"""Drive planning on a small synthetic road network (a loop, a through road with T junctions at
both ends, and a dead-end spur)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cvfm_ros.data.trajectory import DriveProfile, Trajectory, build_road_graph, plan_drive


def network() -> list[np.ndarray]:
    loop = np.array([[0, 0], [200, 0], [200, 150], [0, 150], [0, 0]], float)      # closed
    # Through road drawn the way maps are: starting 0.5 m off the loop, ending 0.6 m past it.
    through = np.array([[100, 0.5], [100, 60], [101, 150.6]], float)
    spur = np.array([[200, 75], [260, 75], [300, 110]], float)                    # dead end
    return [loop, through, spur]


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _distance_to_roads(x, y, roads):
    """Signed distance of points to the nearest road segment: positive on the segment's right."""
    best = np.full(len(x), np.inf)
    side = np.zeros(len(x))
    p = np.stack([x, y], -1)
    for road in roads:
        for a, b in zip(road[:-1], road[1:]):
            d = b - a
            t = np.clip(((p - a) @ d) / (d @ d), 0, 1)
            q = a + t[:, None] * d
            dist = np.hypot(*(p - q).T)
            cross = d[0] * (p[:, 1] - a[1]) - d[1] * (p[:, 0] - a[0])  # > 0: left of a->b
            better = dist < best
            best = np.where(better, dist, best)
            side = np.where(better, -np.sign(cross), side)
    return best, side


def test_road_graph_junctions():
    g = build_road_graph(network(), tolerance_m=1.0)
    deg = sorted(g.degree(n) for n in range(len(g.nodes)))
    # Two T junctions on the loop (3 roads each), the spur's junction (3), its dead end (1) and
    # the seam where the closed loop polyline starts and ends (2).
    assert deg == [1, 2, 3, 3, 3]
    t_bottom = min(range(len(g.nodes)), key=lambda n: np.hypot(*(g.nodes[n] - [100, 0])))
    assert np.hypot(*(g.nodes[t_bottom] - [100, 0])) < 1.0
    total = sum(e.length for e in g.edges)
    assert total == pytest.approx(700 + 150 + 60 + math.hypot(40, 35), abs=2.0)
    with pytest.raises(ValueError, match=r"roads\[1\]"):
        build_road_graph([network()[0], np.zeros((1, 2))])
    with pytest.raises(ValueError, match="roads"):
        build_road_graph([])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_drive_is_smooth_and_physical(seed):
    profile = DriveProfile()
    traj = plan_drive(network(), duration_s=60.0, rate_hz=10.0, seed=seed, profile=profile)
    assert isinstance(traj, Trajectory) and len(traj) == 601
    np.testing.assert_allclose(np.diff(traj.t), 0.1, atol=1e-12)
    assert traj.v[0] == 0.0                                 # starts from rest
    assert traj.v.max() <= profile.cruise_speed_range[1] + 1e-9
    assert 5.0 < traj.v.mean() < 11.0
    acc = np.diff(traj.v) / 0.1
    assert acc.max() <= profile.max_accel + 1e-6 and acc.min() >= -profile.max_decel - 1e-6
    assert np.abs(traj.v * traj.yaw_rate).max() <= profile.max_lateral_accel + 1e-6
    # No yaw jumps: each step turns by what the yaw rate says, and never much.
    dyaw = _wrap(np.diff(traj.yaw))
    assert np.abs(dyaw).max() < 0.2
    np.testing.assert_allclose(dyaw, 0.05 * (traj.yaw_rate[1:] + traj.yaw_rate[:-1]), atol=0.03)
    assert (traj.yaw > -math.pi).all() and (traj.yaw <= math.pi).all()
    # Positions advance as the speed says, along the heading.
    step = np.stack([np.diff(traj.x), np.diff(traj.y)], -1)
    np.testing.assert_allclose(np.hypot(*step.T), 0.05 * (traj.v[1:] + traj.v[:-1]), atol=0.01)
    moving = np.hypot(*step.T) > 0.2
    mid_heading = traj.yaw[:-1] + dyaw / 2
    along = step[:, 0] * np.cos(mid_heading) + step[:, 1] * np.sin(mid_heading)
    assert (along[moving] > 0.99 * np.hypot(*step[moving].T)).all()
    # The route turns (several 90 degree corners) rather than driving straight.
    assert np.abs(dyaw).sum() > math.radians(150)


def test_drive_keeps_to_the_right_hand_lane():
    roads = network()
    for seed, right in ((0, True), (1, False)):
        profile = DriveProfile(right_hand_traffic=right)
        traj = plan_drive(roads, 60.0, 10.0, seed, profile)
        straight = np.abs(traj.yaw_rate) < 1e-9
        dist, side = _distance_to_roads(traj.x[straight], traj.y[straight], roads)
        # The side is judged against the direction of travel, not of the polyline.
        heading = np.stack([np.cos(traj.yaw[straight]), np.sin(traj.yaw[straight])], -1)
        seg_dir = []
        for px, py in zip(traj.x[straight], traj.y[straight]):
            best = (np.inf, None)
            for road in roads:
                for a, b in zip(road[:-1], road[1:]):
                    d = b - a
                    t = np.clip(((np.array([px, py]) - a) @ d) / (d @ d), 0, 1)
                    dd = np.hypot(*(a + t * d - [px, py]))
                    if dd < best[0]:
                        best = (dd, d / np.hypot(*d))
            seg_dir.append(best[1])
        agree = np.sign((heading * np.asarray(seg_dir)).sum(-1))
        on_right = side * agree > 0
        np.testing.assert_allclose(np.median(dist), profile.lane_offset, atol=0.1)
        assert on_right.mean() > 0.95 if right else on_right.mean() < 0.05


def test_stops_and_determinism():
    roads = network()
    a = plan_drive(roads, 60.0, 10.0, seed=1)
    b = plan_drive(roads, 60.0, 10.0, seed=1)
    c = plan_drive(roads, 60.0, 10.0, seed=2)
    for name in ("x", "y", "yaw", "v", "yaw_rate"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.allclose(a.x, c.x)
    # Some drives stop at a junction for a few seconds (then drive on).
    stopped_runs = []
    for seed in range(8):
        traj = plan_drive(roads, 60.0, 10.0, seed=seed)
        still = np.concatenate([[False], traj.v[1:] == 0.0, [False]])
        edges = np.flatnonzero(np.diff(still.astype(int)))
        stopped_runs += [(e - s) / 10.0 for s, e in zip(edges[::2], edges[1::2]) if e < len(traj)]
    assert stopped_runs and max(stopped_runs) >= 2.0


def test_dead_end_u_turn():
    road = [np.array([[0.0, 0.0], [120.0, 0.0], [160.0, 40.0]])]
    traj = plan_drive(road, 60.0, 10.0, seed=3)
    # One road with two dead ends: the car turns around, continuously.
    turned = np.abs(np.diff(np.unwrap(traj.yaw))).sum()
    assert turned > math.radians(300)
    assert np.abs(_wrap(np.diff(traj.yaw))).max() < 0.2
    assert traj.x.min() > -3 and traj.x.max() < 165


def test_bad_arguments():
    with pytest.raises(ValueError, match="duration_s"):
        plan_drive(network(), 0.0)
    with pytest.raises(ValueError, match="rate_hz"):
        plan_drive(network(), 10.0, rate_hz=-1)
    with pytest.raises(ValueError, match="cruise_speed_range"):
        DriveProfile(cruise_speed_range=(5.0, 1.0))
    with pytest.raises(ValueError, match="Trajectory.t"):
        Trajectory(*(np.zeros(3) for _ in range(6)))
    poses = plan_drive(network(), 2.0).poses()
    assert poses.data.shape == (21, 3)
    assert plan_drive(network(), 2.0).stamps_ns(10**18)[1] == 10**18 + 100_000_000
