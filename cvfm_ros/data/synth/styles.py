"""City styles: palettes, densities and sizes that make worlds of one style look alike.

Seen styles are used for training and same-area evaluation; unseen styles only for cross-area
evaluation (VIGOR's protocol).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CityStyle:
    name: str
    block_m: tuple[float, float]  # block size range between parallel roads
    road_width_m: tuple[float, float]
    sidewalk_m: float
    building_height_m: tuple[float, float]
    building_size_m: tuple[float, float]
    building_density: float  # share of candidate lots that get a building
    tree_density: float  # trees per 100 m of road
    tree_height_m: tuple[float, float]
    parked_density: float  # parked cars per 100 m of road
    moving_density: float
    diagonal_roads: int
    curved_roads: int
    open_ground: str  # "grass" | "soil" | "parking"
    asphalt: tuple[int, int, int]
    sidewalk: tuple[int, int, int]
    grass: tuple[int, int, int]
    soil: tuple[int, int, int]
    roofs: tuple[tuple[int, int, int], ...]
    facades: tuple[tuple[int, int, int], ...]
    marking: tuple[int, int, int] = (235, 235, 225)


STYLES: dict[str, CityStyle] = {s.name: s for s in [
    CityStyle("downtown", (50, 80), (10, 14), 4.0, (15, 40), (14, 30), 0.9, 2.0, (5, 9), 4.0, 2.0, 1, 0, "parking",
              (78, 80, 84), (170, 168, 160), (96, 128, 70), (130, 110, 90),
              ((120, 120, 125), (90, 95, 100), (150, 140, 130), (60, 62, 66)),
              ((170, 160, 150), (120, 130, 140), (200, 190, 175), (95, 90, 88))),
    CityStyle("suburb", (60, 100), (7, 9), 2.0, (4, 9), (8, 16), 0.6, 5.0, (6, 14), 2.0, 0.8, 1, 1, "grass",
              (92, 92, 92), (185, 182, 175), (88, 132, 62), (140, 115, 85),
              ((150, 70, 60), (80, 80, 90), (120, 100, 80), (170, 165, 160)),
              ((225, 220, 205), (200, 180, 150), (170, 190, 200), (215, 200, 190))),
    CityStyle("industrial", (70, 110), (9, 12), 1.5, (6, 14), (20, 40), 0.7, 1.0, (5, 9), 1.5, 1.0, 0, 1, "soil",
              (84, 86, 88), (160, 158, 152), (110, 130, 80), (150, 128, 100),
              ((185, 188, 190), (140, 145, 150), (100, 120, 140), (160, 155, 150)),
              ((175, 175, 170), (140, 150, 155), (190, 185, 170), (120, 110, 100))),
    CityStyle("oldtown", (35, 55), (6, 8), 2.5, (8, 18), (8, 14), 0.95, 2.5, (5, 10), 3.0, 1.0, 2, 1, "grass",
              (105, 100, 95), (175, 160, 140), (92, 125, 66), (135, 112, 88),
              ((165, 85, 60), (140, 70, 55), (110, 95, 85), (180, 110, 80)),
              ((230, 210, 180), (210, 180, 150), (190, 200, 190), (200, 170, 140))),
    CityStyle("campus", (80, 120), (8, 10), 3.0, (6, 20), (20, 35), 0.5, 6.0, (7, 15), 1.0, 0.5, 1, 2, "grass",
              (95, 95, 98), (195, 190, 182), (84, 138, 70), (145, 120, 90),
              ((110, 110, 115), (160, 150, 140), (90, 100, 110), (200, 200, 200)),
              ((200, 170, 140), (180, 185, 190), (160, 110, 90), (215, 215, 210))),
    CityStyle("desert", (60, 90), (9, 12), 2.0, (4, 10), (10, 22), 0.55, 0.8, (4, 7), 2.0, 1.0, 1, 0, "soil",
              (100, 96, 90), (200, 190, 170), (130, 140, 90), (195, 170, 130),
              ((210, 200, 180), (190, 170, 140), (170, 150, 120), (220, 215, 205)),
              ((225, 205, 175), (210, 190, 160), (235, 225, 205), (190, 165, 135))),
]}

SEEN_STYLES: tuple[str, ...] = ("downtown", "suburb", "industrial", "oldtown")
UNSEEN_STYLES: tuple[str, ...] = ("campus", "desert")


def get_style(style: str | CityStyle) -> CityStyle:
    if isinstance(style, CityStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"style: unknown style {style!r}; expected one of {sorted(STYLES)}")
    return STYLES[style]
