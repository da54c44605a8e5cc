"""Yaw hypotheses (cvfm_ros/model/yaw_search.py): which yaws are tried, and how the winner is picked."""
import math

import numpy as np
import pytest
import torch

from cvfm_ros.model.yaw_search import best_hypothesis, search_yaw, yaw_hypotheses

STEP = math.radians(20)


def _gaps(yaws: np.ndarray) -> np.ndarray:
    s = np.sort(np.mod(yaws, 2 * math.pi))
    return np.diff(np.concatenate([s, s[:1] + 2 * math.pi]))


def test_a_tight_prior_runs_once_at_the_prior_yaw():
    assert np.allclose(yaw_hypotheses(0.3, math.radians(2), STEP), [0.3])
    assert np.allclose(yaw_hypotheses(0.3, 0.0, STEP), [0.3])


def test_a_loose_prior_is_covered_within_plus_minus_three_sigma():
    yaws = yaw_hypotheses(0.3, math.radians(30), STEP)
    assert yaws[0] == pytest.approx(0.3)  # the prior first
    offsets = np.sort(np.remainder(yaws - 0.3 + math.pi, 2 * math.pi) - math.pi)
    assert np.allclose(np.diff(offsets), STEP)  # at most one step apart
    assert offsets[-1] + STEP / 2 >= math.radians(90) - 1e-9 and offsets[0] - STEP / 2 <= -math.radians(90) + 1e-9
    assert len(yaws) == 9


def test_an_unknown_yaw_covers_the_circle_evenly():
    yaws = yaw_hypotheses(3.0, math.pi, STEP)
    assert len(yaws) == 18 and np.all(np.abs(yaws) <= math.pi)
    assert np.allclose(_gaps(yaws), 2 * math.pi / 18)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="finite"):
        yaw_hypotheses(float("nan"), 0.1, STEP)
    with pytest.raises(ValueError, match="std"):
        yaw_hypotheses(0.0, -0.1, STEP)
    with pytest.raises(ValueError, match="step"):
        yaw_hypotheses(0.0, 0.1, 0.0)


def test_best_hypothesis_takes_the_highest_score():
    assert best_hypothesis(np.array([3.0, 7.5, 0.0, 7.4])) == 1
    assert best_hypothesis(torch.tensor([[0.5], [2.0]])) == 1  # one score per backend run, concatenated


def test_effective_inliers_prefer_a_consistent_match_set():
    # Two hypotheses with equally many, equally weighted matches: in one they agree on a pose, in
    # the other half of them are scattered. Only the consensus tells them apart.
    from cvfm_ros.model.pose import PoseSolverConfig, solve_pose

    gen = torch.Generator().manual_seed(2)
    src = (torch.rand(2, 40, 2, generator=gen) - 0.5) * 30
    dst = src + torch.tensor([1.0, -2.0]) + 0.05 * torch.randn(2, 40, 2, generator=gen)
    dst[1, :20] = (torch.rand(20, 2, generator=gen) - 0.5) * 30
    solved = solve_pose(src, dst, torch.ones(2, 40), PoseSolverConfig(), torch.full((2,), 1.6))
    assert torch.allclose(solved["effective_matches"], torch.tensor([40.0, 40.0]))
    assert solved["effective_inliers"][0] > 35 and solved["effective_inliers"][1] < 30
    assert best_hypothesis(solved["effective_inliers"]) == 0


class _PeakedAtYaw(torch.nn.Module):
    """Matches only near one true yaw: more (and more even) match weight the closer the hypothesis."""

    def __init__(self, true_yaw: float) -> None:
        super().__init__()
        self.true_yaw = true_yaw

    def forward(self, batch):
        err = torch.remainder(batch["prior_yaw"] - self.true_yaw + math.pi, 2 * math.pi) - math.pi
        n = (30 * torch.exp(-(err / 0.2) ** 2)).round().long() + 1
        weights = (torch.arange(32).unsqueeze(0) < n.unsqueeze(1)).float()
        return {"match_weights": weights, "pose": torch.stack([err, err, batch["prior_yaw"]], 1),
                "effective_inliers": n.float()}


def test_search_keeps_the_hypothesis_with_most_effective_inliers():
    batch = {"ground": torch.zeros(1, 3, 4, 8), "aerial": torch.zeros(1, 3, 4, 4), "aerial_mpp": 0.4,
             "prior_yaw": torch.tensor([0.0])}
    yaws = yaw_hypotheses(0.0, math.pi, STEP)
    out, index = search_yaw(_PeakedAtYaw(true_yaw=2.1), batch, yaws, chunk=5)  # chunks of 5: 4 calls
    assert abs(math.remainder(float(yaws[index]) - 2.1, 2 * math.pi)) <= STEP / 2
    assert out["pose"].shape == (1, 3) and out["match_weights"].shape == (1, 32)
    with pytest.raises(ValueError, match="one pair"):
        search_yaw(_PeakedAtYaw(0.0), {**batch, "ground": torch.zeros(2, 3, 4, 8)}, yaws)
    with pytest.raises(ValueError, match="yaws"):
        search_yaw(_PeakedAtYaw(0.0), batch, np.zeros(0))


def test_pick_hypothesis_takes_the_most_effective_inliers():
    """The localizer's one-hypothesis-at-a-time search uses the same rule as search_yaw."""
    import numpy as np
    import torch

    from cvfm_ros.model.yaw_search import pick_hypothesis

    outputs = [{"effective_inliers": np.array([3.0]), "id": 0}, {"effective_inliers": torch.tensor([7.0]), "id": 1},
               {"effective_inliers": np.array([5.0]), "id": 2}]
    best, index = pick_hypothesis(outputs)
    assert index == 1 and best["id"] == 1
