import math

import pytest
import torch

from cvfm_ros.geometry import SE2, reweighted_procrustes_2d, weighted_procrustes_2d


def _random_case(batch=16, n=60, noise=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    truth = SE2(torch.cat([torch.randn(batch, 2, generator=gen, dtype=torch.float64) * 20,
                           (torch.rand(batch, 1, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi], -1))
    src = (torch.rand(batch, n, 2, generator=gen, dtype=torch.float64) - 0.5) * 30
    dst = truth.apply(src) + noise * torch.randn(batch, n, 2, generator=gen, dtype=torch.float64)
    return truth, src, dst


def test_recovers_random_transforms_to_noise_level():
    truth, src, dst = _random_case()
    res = weighted_procrustes_2d(src, dst, torch.ones(src.shape[:2], dtype=torch.float64))
    assert res.valid.all()
    assert (res.translation - truth.translation).norm(dim=-1).max() < 0.05
    assert (torch.remainder(res.yaw - truth.yaw + math.pi, 2 * math.pi) - math.pi).abs().max() < 0.005
    assert torch.allclose(res.rotation @ res.rotation.transpose(-1, -2), torch.eye(2, dtype=torch.float64).expand(16, 2, 2))
    noiseless = weighted_procrustes_2d(src, truth.apply(src), torch.ones(src.shape[:2], dtype=torch.float64))
    assert torch.allclose(noiseless.translation, truth.translation, atol=1e-9)


def test_weights_ignore_outliers():
    truth, src, dst = _random_case(batch=4, noise=0.0)
    dst = dst.clone()
    dst[:, :10] += 50.0  # gross outliers
    weights = torch.ones(src.shape[:2], dtype=torch.float64)
    weights[:, :10] = 0
    res = weighted_procrustes_2d(src, dst, weights)
    assert torch.allclose(res.translation, truth.translation, atol=1e-9)


def test_covariance_is_calibrated():
    # Monte Carlo: the normalised estimation error squared averages the 3 degrees of freedom.
    truth, src, dst = _random_case(batch=2000, n=40, noise=0.3, seed=5)
    weights = torch.rand(src.shape[:2], dtype=torch.float64) + 0.5
    noise = 0.3 * torch.randn_like(src) / weights.sqrt().unsqueeze(-1)
    res = weighted_procrustes_2d(src, truth.apply(src) + noise, weights)
    err = torch.cat([res.translation - truth.translation,
                     (torch.remainder(res.yaw - truth.yaw + math.pi, 2 * math.pi) - math.pi)[:, None]], -1)
    nees = (err.unsqueeze(-2) @ torch.linalg.inv(res.covariance) @ err.unsqueeze(-1)).squeeze()
    assert 2.6 < float(nees.mean()) < 3.4
    assert (torch.linalg.eigvalsh(res.covariance) > 0).all()


def test_gradcheck_float64():
    _, src, dst = _random_case(batch=2, n=8)
    weights = torch.rand(2, 8, dtype=torch.float64) + 0.1
    src.requires_grad_(True)
    dst.requires_grad_(True)
    weights.requires_grad_(True)

    def fn(s, d, w):
        r = weighted_procrustes_2d(s, d, w)
        return r.translation, r.yaw, r.covariance

    assert torch.autograd.gradcheck(fn, (src, dst, weights), eps=1e-6, atol=1e-5)


def test_degenerate_inputs_are_flagged_not_nan():
    src = torch.randn(3, 10, 2, dtype=torch.float64)
    dst = src + 1.0
    weights = torch.ones(3, 10, dtype=torch.float64)
    weights[0] = 0  # no weight at all
    src[1] = torch.tensor([2.0, 3.0], dtype=torch.float64)  # every source point at one place
    src.requires_grad_(True)
    res = weighted_procrustes_2d(src, dst, weights)
    assert res.valid.tolist() == [False, False, True]
    for field in res:
        assert torch.isfinite(field.double()).all()
    assert (res.covariance[:2].diagonal(dim1=-2, dim2=-1) >= 1e5).all()
    (res.translation.sum() + res.yaw.sum()).backward()
    assert torch.isfinite(src.grad).all()


def test_collinear_points_are_solved():
    t = torch.linspace(-5, 5, 20, dtype=torch.float64)
    src = torch.stack([t, 0.5 * t], -1)[None]
    truth = SE2.from_xy_yaw(torch.tensor([3.0], dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64),
                            torch.tensor([2.0], dtype=torch.float64))
    res = weighted_procrustes_2d(src, truth.apply(src), torch.ones(1, 20, dtype=torch.float64))
    assert res.valid.all()
    assert torch.allclose(res.translation, truth.translation, atol=1e-9)
    assert torch.allclose(res.yaw, truth.yaw, atol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dst"):
        weighted_procrustes_2d(torch.zeros(2, 5, 2), torch.zeros(2, 4, 2), torch.ones(2, 5))
    with pytest.raises(ValueError, match="weights"):
        weighted_procrustes_2d(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), torch.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_procrustes_2d(torch.zeros(1, 5, 2), torch.zeros(1, 5, 2), -torch.ones(1, 5))
    with pytest.raises(ValueError, match="floating"):
        weighted_procrustes_2d(torch.zeros(1, 5, 2, dtype=torch.long), torch.zeros(1, 5, 2), torch.ones(1, 5))


def _yaw_error(a, b):
    return (torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi).abs()


def test_reweighting_rejects_unflagged_outliers():
    # A fifth of the matches are gross outliers with full weight: the plain solve is pulled off,
    # the Cauchy rounds return to the inliers' pose.
    truth, src, dst = _random_case(batch=8, n=60, noise=0.05, seed=3)
    gen = torch.Generator().manual_seed(4)
    dst = dst.clone()
    dst[:, :12] += (torch.rand(8, 12, 2, generator=gen, dtype=torch.float64) - 0.5) * 40
    weights = torch.ones(src.shape[:2], dtype=torch.float64)
    plain = weighted_procrustes_2d(src, dst, weights)
    robust, robust_weights = reweighted_procrustes_2d(src, dst, weights, scale=1.0, iterations=6)
    plain_err = (plain.translation - truth.translation).norm(dim=-1)
    robust_err = (robust.translation - truth.translation).norm(dim=-1)
    assert plain_err.median() > 0.5
    assert robust_err.max() < 0.1 and _yaw_error(robust.yaw, truth.yaw).max() < 0.01
    assert robust_weights.shape == weights.shape
    assert (robust_weights[:, :12].mean(-1) < 0.2 * robust_weights[:, 12:].mean(-1)).all()


def test_reweighting_keeps_an_outlier_free_solve_and_zero_rounds_are_plain():
    truth, src, dst = _random_case(batch=4, noise=0.0)
    weights = torch.rand(src.shape[:2], dtype=torch.float64) + 0.1
    robust, robust_weights = reweighted_procrustes_2d(src, dst, weights, scale=torch.full((4,), 0.5, dtype=torch.float64))
    assert torch.allclose(robust.translation, truth.translation, atol=1e-9)
    assert torch.allclose(robust_weights, weights)  # zero residuals leave the weights as given
    zero, same = reweighted_procrustes_2d(src, dst + 0.3, weights, scale=1.0, iterations=0)
    plain = weighted_procrustes_2d(src, dst + 0.3, weights)
    assert torch.equal(zero.translation, plain.translation) and same is weights


def test_reweighting_gradcheck_and_bad_arguments():
    _, src, dst = _random_case(batch=2, n=8, noise=0.3)
    weights = torch.rand(2, 8, dtype=torch.float64, requires_grad=True)
    src = src.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, w: reweighted_procrustes_2d(s, dst, w, 2.0, 2)[0].translation,
                                    (src, weights))
    with pytest.raises(ValueError, match="scale"):
        reweighted_procrustes_2d(src, dst, weights, scale=0.0)
    with pytest.raises(ValueError, match="iterations"):
        reweighted_procrustes_2d(src, dst, weights, scale=1.0, iterations=-1)
