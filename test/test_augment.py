"""Appearance augmentation towards real imagery (data/synth/augment.py)."""
import numpy as np
import pytest

from cvfm_ros.data.synth import generate_world, make_pair
from cvfm_ros.data.synth.augment import AugmentConfig, augment_aerial, augment_ground

OFF = {name: 0.0 for name in AugmentConfig.__dataclass_fields__ if name != "enabled"}


@pytest.fixture(scope="module")
def sample():
    return make_pair(generate_world("suburb", 2, size_m=160.0), np.random.default_rng(0), camera="pano",
                     ground_size=(256, 128), aerial_size=128, mpp=0.4)


def test_augmentation_is_reproducible_and_keeps_the_image_layout(sample):
    config = AugmentConfig()
    g1 = augment_ground(sample.ground, np.random.default_rng(5), config)
    g2 = augment_ground(sample.ground, np.random.default_rng(5), config)
    a1 = augment_aerial(sample.aerial, np.random.default_rng(5), config)
    assert np.array_equal(g1, g2)
    assert g1.shape == sample.ground.shape and g1.dtype == np.uint8
    assert a1.shape == sample.aerial.shape and a1.dtype == np.uint8
    changed = [not np.array_equal(augment_aerial(sample.aerial, np.random.default_rng(s), config), sample.aerial)
               for s in range(10)]
    assert sum(changed) >= 8
    # Geometry is untouched: the augmented image still lines up with the original (a colour change,
    # not a warp), so the stored correspondences stay exact.
    grey = lambda im: im.astype(float).mean(axis=2)  # noqa: E731
    for seed in range(5):
        out = augment_aerial(sample.aerial, np.random.default_rng(seed), AugmentConfig(canopies=0, aerial_shadows=0))
        assert np.corrcoef(grey(out).ravel(), grey(sample.aerial).ravel())[0, 1] > 0.6


def test_disabled_or_zero_probabilities_leave_images_unchanged(sample):
    rng = np.random.default_rng(1)
    assert augment_ground(sample.ground, rng, AugmentConfig(enabled=False)) is sample.ground
    assert np.array_equal(augment_aerial(sample.aerial, rng, AugmentConfig(**OFF)), sample.aerial)


def test_sky_changes_only_rows_above_the_horizon(sample):
    config = AugmentConfig(**{**OFF, "sky": 1.0})
    out = augment_ground(sample.ground, np.random.default_rng(2), config, horizon_row=64)
    assert np.array_equal(out[64:], sample.ground[64:])
    assert not np.array_equal(out[:64], sample.ground[:64])
    # the new sky is blue-dominant where it replaced the renderer's
    changed = np.any(out[:64] != sample.ground[:64], axis=2)
    assert out[:64][changed][:, 2].mean() > out[:64][changed][:, 0].mean()


def test_canopies_darken_and_green_the_aerial_image(sample):
    config = AugmentConfig(**{**OFF, "canopies": 1.0})
    outs = [augment_aerial(sample.aerial, np.random.default_rng(s), config) for s in range(5)]
    for out in outs:
        diff = np.any(out != sample.aerial, axis=2)
        assert diff.mean() > 0.01
        assert out[diff].astype(float).mean() < sample.aerial[diff].astype(float).mean()


def test_bad_probabilities_name_the_setting():
    with pytest.raises(ValueError, match=r"AugmentConfig.jpeg: expected a probability"):
        AugmentConfig(jpeg=1.5)
