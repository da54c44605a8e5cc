"""The synthetic CVFM-style data engine: procedural 2.5D worlds rendered from the air and the
street with exact pixel-level ground truth (see docs/DATASET.md)."""
from .pairs import PairSample, SyntheticPairDataset, make_pair, random_camera, sample_street_pose
from .render import (
    AerialAppearance, AerialRender, GroundAppearance, GroundClass, GroundRender, aerial_correspondences, render_aerial,
    render_ground, render_orthophoto, surface_height_grid,
)
from .styles import SEEN_STYLES, STYLES, UNSEEN_STYLES, CityStyle, get_style
from .world import World, WorldClass, generate_world

__all__ = [
    "AerialAppearance", "AerialRender", "CityStyle", "GroundAppearance", "GroundClass", "GroundRender", "PairSample",
    "SEEN_STYLES", "STYLES", "SyntheticPairDataset", "UNSEEN_STYLES", "World", "WorldClass", "aerial_correspondences",
    "generate_world", "get_style", "make_pair", "random_camera", "render_aerial", "render_ground", "render_orthophoto",
    "sample_street_pose", "surface_height_grid",
]
