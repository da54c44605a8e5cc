import math

import numpy as np
import pytest

from cvfm_ros.geometry.planar import compose, covariance_ellipse, inverse, map_from_odom, relative
from cvfm_ros.io import UNESTIMATED_VARIANCE, covariance_from_ros, covariance_to_ros


def test_compose_inverse_relative():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.array([*rng.normal(size=2) * 10, rng.uniform(-math.pi, math.pi)])
        b = np.array([*rng.normal(size=2) * 10, rng.uniform(-math.pi, math.pi)])
        assert np.allclose(compose(a, inverse(a)), 0, atol=1e-12)
        assert np.allclose(compose(a, relative(a, b)), b, atol=1e-9)


def test_map_from_odom_closes_the_tf_chain():
    map_from_base = np.array([105.0, -20.0, 1.2])
    odom_from_base = np.array([3.0, 4.0, -0.4])
    m_o = map_from_odom(map_from_base, odom_from_base)
    # map -> odom -> base_link, as a TF listener composes it, gives the fix back.
    assert np.allclose(compose(m_o, odom_from_base), map_from_base)


def test_covariance_layout_for_ros():
    cov3 = np.array([[0.5, 0.1, 0.01], [0.1, 0.4, 0.02], [0.01, 0.02, 0.003]])
    cov36 = covariance_to_ros(cov3)
    assert len(cov36) == 36
    assert [cov36[i] for i in (0, 7, 35)] == [0.5, 0.4, 0.003]
    assert cov36[1] == 0.1 and cov36[5] == 0.01 and cov36[30] == 0.01
    assert [cov36[i] for i in (14, 21, 28)] == [UNESTIMATED_VARIANCE] * 3
    assert np.allclose(covariance_from_ros(cov36), cov3)
    with pytest.raises(ValueError, match="covariance"):
        covariance_to_ros(np.full((3, 3), np.nan))


def test_covariance_ellipse_axes():
    major, minor, angle = covariance_ellipse(np.diag([4.0, 1.0]), sigma=1.0)
    assert (major, minor) == pytest.approx((2.0, 1.0))
    assert abs(math.sin(angle)) < 1e-9
