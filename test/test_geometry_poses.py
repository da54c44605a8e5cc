import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cvfm_ros.geometry import (
    SE2, SE3, matrix_to_quaternion, quaternion_to_matrix, quaternion_to_yaw, vigor_heading_to_yaw,
    wrap_angle, yaw_to_quaternion, yaw_to_vigor_heading,
)


def test_wrap_angle_range_and_pi():
    a = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    w = wrap_angle(a)
    assert (w > -math.pi).all() and (w <= math.pi).all()
    assert torch.allclose(torch.sin(w), torch.sin(a), atol=1e-12)
    assert torch.allclose(torch.cos(w), torch.cos(a), atol=1e-12)
    assert wrap_angle(math.pi) == pytest.approx(math.pi)
    assert wrap_angle(-math.pi) == pytest.approx(math.pi)
    assert float(wrap_angle(torch.tensor(-math.pi, dtype=torch.float64))) == pytest.approx(math.pi)
    assert wrap_angle(3 * math.pi / 2) == pytest.approx(-math.pi / 2)


def test_se2_compose_inverse_apply():
    a = SE2(torch.randn(5, 3, dtype=torch.float64))
    b = SE2(torch.randn(5, 3, dtype=torch.float64))
    pts = torch.randn(5, 7, 2, dtype=torch.float64)
    assert torch.allclose(a.compose(b).apply(pts), a.apply(b.apply(pts)), atol=1e-12)
    ident = a.compose(a.inverse())
    assert torch.allclose(ident.data, torch.zeros_like(ident.data), atol=1e-12)
    assert torch.allclose(a.matrix() @ b.matrix(), a.compose(b).matrix(), atol=1e-12)


def test_se2_yaw_is_counter_clockwise():
    pose = SE2.from_xy_yaw(0.0, 0.0, math.pi / 2)
    forward = pose.apply(torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(forward, torch.tensor([[0.0, 1.0]]), atol=1e-6)  # +x of the body points north


def test_se3_compose_inverse_and_se2_roundtrip():
    rot = torch.as_tensor(Rotation.random(4, random_state=1).as_matrix())
    a = SE3(rot, torch.randn(4, 3, dtype=torch.float64))
    pts = torch.randn(4, 6, 3, dtype=torch.float64)
    assert torch.allclose(a.inverse().apply(a.apply(pts)), pts, atol=1e-12)
    assert torch.allclose(a.compose(a.inverse()).matrix(), torch.eye(4, dtype=torch.float64).expand(4, 4, 4), atol=1e-12)
    planar = SE2(torch.tensor([[1.0, 2.0, 0.3], [-4.0, 0.5, -2.9]], dtype=torch.float64))
    assert torch.allclose(SE3.from_se2(planar).to_se2().data, planar.data, atol=1e-12)


def test_quaternion_yaw_agrees_with_scipy():
    yaws = np.linspace(-3.1, 3.1, 25)
    q = yaw_to_quaternion(torch.as_tensor(yaws))
    ref = Rotation.from_euler("z", yaws[:, None]).as_quat()  # scipy also uses (x, y, z, w)
    assert np.allclose(q.numpy(), ref, atol=1e-12) or np.allclose(q.numpy(), -ref, atol=1e-12)
    # yaw of a general rotation (ZYX convention) against scipy's intrinsic ZYX Euler angles
    rots = Rotation.random(50, random_state=2)
    got = quaternion_to_yaw(torch.as_tensor(rots.as_quat()))
    want = rots.as_euler("ZYX")[:, 0]
    assert np.allclose(np.angle(np.exp(1j * (got.numpy() - want))), 0, atol=1e-9)


def test_matrix_quaternion_roundtrip_against_scipy():
    rots = Rotation.random(100, random_state=3)
    q = torch.as_tensor(rots.as_quat())
    m = quaternion_to_matrix(q)
    assert np.allclose(m.numpy(), rots.as_matrix(), atol=1e-12)
    q2 = matrix_to_quaternion(m)
    assert torch.allclose(q2, torch.where(q[..., 3:] < 0, -q, q), atol=1e-9)


def test_vigor_heading_conversion():
    # VIGOR / compass: 0 = north, clockwise. ENU yaw: 0 = east, counter-clockwise.
    assert vigor_heading_to_yaw(0.0) == pytest.approx(math.pi / 2)
    assert vigor_heading_to_yaw(90.0) == pytest.approx(0.0)
    assert vigor_heading_to_yaw(180.0) == pytest.approx(-math.pi / 2)
    assert abs(vigor_heading_to_yaw(270.0)) == pytest.approx(math.pi)
    h = torch.linspace(0, 359, 50, dtype=torch.float64)
    assert torch.allclose(yaw_to_vigor_heading(vigor_heading_to_yaw(h)), h, atol=1e-9)


def test_bad_shapes_raise_named_errors():
    with pytest.raises(ValueError, match="SE2.data"):
        SE2(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="quaternion_xyzw"):
        quaternion_to_yaw(torch.zeros(3))
    with pytest.raises(ValueError, match="quaternion_xyzw: expected non-zero"):
        quaternion_to_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="points"):
        SE2.identity(2).apply(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="translation batch"):
        SE3(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3))
