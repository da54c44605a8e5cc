"""Procedural 2.5D worlds: a pure function of (style, seed).

Convention: the world is a square of `size_m` metres centred on the `map` origin (x east, y
north); rasters are north-up (row 0 is the northern edge) with `res_m` metres per cell, and
`world.grid` (a MetricGrid) converts between cells and metres. Heights are metres above the
ground plane (z = 0). Surfaces are opaque columns from the ground to `height`, except tree
canopies, which float from `canopy_bottom_m` to `height` (the ground beneath them is seen from
the street, not from the air).
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...geometry import MetricGrid
from .styles import CityStyle, get_style

CANOPY_BOTTOM_M = 2.6
SIDEWALK_HEIGHT_M = 0.15


class WorldClass(enum.IntEnum):
    ROAD = 1
    SIDEWALK = 2
    GRASS = 3
    SOIL = 4
    PARKING = 5
    BUILDING = 6
    TREE = 7
    VEHICLE = 8
    POLE = 9


@dataclass
class Road:
    polyline: np.ndarray  # (K, 2) centre line in map metres
    width_m: float


@dataclass
class Vehicle:
    x: float
    y: float
    yaw: float
    length_m: float
    width_m: float
    color: tuple[int, int, int]
    moving: bool


@dataclass
class World:
    style: CityStyle
    seed: int
    size_m: float
    res_m: float
    albedo: np.ndarray  # (N, N, 3) uint8: the top surface seen from above
    height: np.ndarray  # (N, N) float32: top of the surface column
    classes: np.ndarray  # (N, N) uint8 WorldClass of the top surface
    ground_albedo: np.ndarray  # (N, N, 3) uint8: the ground beneath trees and vehicles
    ground_height: np.ndarray  # (N, N) float32: the ground (sidewalk curbs included), no trees/vehicles
    ground_classes: np.ndarray  # (N, N) uint8: the ground's class beneath trees and vehicles
    building_id: np.ndarray  # (N, N) int16: index into facade_colors, -1 elsewhere
    facade_colors: np.ndarray  # (B, 3) uint8
    roads: list[Road] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    vehicle_mask_moving: np.ndarray | None = None  # (N, N) bool: cells covered by moving vehicles

    @property
    def n(self) -> int:
        return self.height.shape[0]

    @property
    def grid(self) -> MetricGrid:
        return MetricGrid(self.n, self.n, self.res_m)

    def to_cell(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map metres -> continuous (col, row) cell coordinates (OpenCV convention)."""
        c = x / self.res_m + (self.n - 1) / 2
        r = -y / self.res_m + (self.n - 1) / 2
        return c, r

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest cell (row, col) of map points and whether they lie inside the world."""
        c, r = self.to_cell(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        ci, ri = np.rint(c).astype(np.int64), np.rint(r).astype(np.int64)
        inside = (ci >= 0) & (ci < self.n) & (ri >= 0) & (ri < self.n)
        return np.clip(ri, 0, self.n - 1), np.clip(ci, 0, self.n - 1), inside

    def height_at(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        r, c, inside = self.cell_index(xy[..., 0], xy[..., 1])
        return np.where(inside, self.height[r, c], 0.0)

    def albedo_at(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        r, c, _ = self.cell_index(xy[..., 0], xy[..., 1])
        return self.albedo[r, c]


# ---------------------------------------------------------------------------------- helpers
def _low_freq_noise(rng: np.random.Generator, n: int, cells: int, amplitude: float) -> np.ndarray:
    small = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC) * amplitude


def _jitter_color(rng: np.random.Generator, color, spread: float = 12.0) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.normal(0, spread), 0, 255)) for c in color)


def _poly_px(world_n: int, res: float, pts: np.ndarray) -> np.ndarray:
    c = pts[:, 0] / res + (world_n - 1) / 2
    r = -pts[:, 1] / res + (world_n - 1) / 2
    # cv2 drawing takes integer pixels; shift=2 keeps quarter-pixel precision.
    return np.round(np.stack([c, r], -1) * 4).astype(np.int32)


def _local_mask(n: int, res: float, poly: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """Rasterise a polygon (map metres) into a mask over its bounding box only (fast for small shapes)."""
    pts = _poly_px(n, res, poly)
    c0, r0 = np.maximum(pts.min(0) // 4 - 1, 0)
    c1, r1 = np.minimum(pts.max(0) // 4 + 2, n)
    if c1 <= c0 or r1 <= r0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), bool)
    mask = np.zeros((r1 - r0, c1 - c0), np.uint8)
    cv2.fillPoly(mask, [pts - np.array([c0, r0]) * 4], 1, cv2.LINE_8, shift=2)
    return (slice(r0, r1), slice(c0, c1)), mask.astype(bool)


def _rect(cx: float, cy: float, length: float, width: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[length / 2, width / 2], [-length / 2, width / 2], [-length / 2, -width / 2], [length / 2, -width / 2]])
    return local @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])


def _road_network(style: CityStyle, rng: np.random.Generator, size: float) -> list[Road]:
    roads: list[Road] = []
    half = size / 2 + 10.0
    for axis in (0, 1):
        pos = -half + rng.uniform(5, style.block_m[0])
        while pos < half:
            t = np.linspace(-half, half, int(2 * half / 8) + 1)
            wobble = np.cumsum(rng.normal(0, 0.25, t.shape))
            wobble -= np.linspace(wobble[0], wobble[-1], len(t))
            wobble = np.clip(wobble, -3, 3)
            line = np.stack([pos + wobble, t], -1) if axis == 0 else np.stack([t, pos + wobble], -1)
            roads.append(Road(line, float(rng.uniform(*style.road_width_m))))
            pos += rng.uniform(*style.block_m)
    for _ in range(style.diagonal_roads):
        angle = rng.uniform(math.radians(25), math.radians(65)) * rng.choice([-1, 1])
        offset = rng.uniform(-size / 4, size / 4)
        t = np.linspace(-1.5 * half, 1.5 * half, 80)
        d = np.array([math.cos(angle), math.sin(angle)])
        nrm = np.array([-d[1], d[0]])
        line = t[:, None] * d + offset * nrm
        roads.append(Road(line[np.abs(line).max(1) < half], float(rng.uniform(*style.road_width_m))))
    for _ in range(style.curved_roads):
        radius = rng.uniform(0.6, 1.2) * size
        centre = rng.uniform(-1, 1, 2) * size * 0.2 + rng.choice([-1, 1], 2) * radius * 0.75
        phi = np.linspace(0, 2 * math.pi, 720)
        arc = centre + radius * np.stack([np.cos(phi), np.sin(phi)], -1)
        keep = np.abs(arc).max(1) < half
        if keep.sum() > 10:
            # keep the longest contiguous run inside the world
            idx = np.flatnonzero(keep)
            splits = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
            run = max(splits, key=len)
            roads.append(Road(arc[run], float(rng.uniform(*style.road_width_m))))
    return roads


def _segment_intersections(roads: list[Road]) -> list[tuple[np.ndarray, int, int]]:
    """Crossing points between different roads (for crosswalks)."""
    out = []
    for i in range(len(roads)):
        for j in range(i + 1, len(roads)):
            a, b = roads[i].polyline, roads[j].polyline
            p, r = a[:-1], a[1:] - a[:-1]
            q, s = b[:-1], b[1:] - b[:-1]
            rxs = r[:, None, 0] * s[None, :, 1] - r[:, None, 1] * s[None, :, 0]
            qp = q[None] - p[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (qp[..., 0] * s[None, :, 1] - qp[..., 1] * s[None, :, 0]) / rxs
                u = (qp[..., 0] * r[:, None, 1] - qp[..., 1] * r[:, None, 0]) / rxs
            hit = (np.abs(rxs) > 1e-9) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
            for ii, jj in zip(*np.nonzero(hit)):
                out.append((p[ii] + t[ii, jj] * r[ii], i, j))
    return out


# ---------------------------------------------------------------------------------- generation
def generate_world(style: str | CityStyle, seed: int, size_m: float = 256.0, res_m: float = 0.1) -> World:
    """Generate the world of (style, seed). Deterministic: same arguments, same arrays."""
    style = get_style(style)
    if not (16.0 <= size_m <= 4096.0):
        raise ValueError(f"size_m: expected 16 to 4096 metres, got {size_m}")
    if not (0.02 <= res_m <= 1.0):
        raise ValueError(f"res_m: expected 0.02 to 1.0 metres per cell, got {res_m}")
    n = int(round(size_m / res_m))
    if n * n > 80_000_000:
        raise ValueError(f"size_m / res_m: {n}x{n} cells is too large (at most about 8900 x 8900)")
    rng = np.random.default_rng([seed, sum(map(ord, style.name))])
    px = lambda m: max(1, int(round(m / res_m)))  # noqa: E731

    albedo = np.zeros((n, n, 3), np.float32)
    classes = np.full((n, n), WorldClass[style.open_ground.upper()], np.uint8)
    base = {"grass": style.grass, "soil": style.soil, "parking": style.asphalt}[style.open_ground]
    albedo[:] = base
    # Patches of the other open surfaces for variety.
    for _ in range(int(size_m * size_m / 1500)):
        kind = rng.choice(["grass", "soil", "parking"])
        cx, cy = rng.uniform(-size_m / 2, size_m / 2, 2)
        poly = _rect(cx, cy, rng.uniform(8, 30), rng.uniform(8, 25), rng.uniform(0, math.pi))
        sl, m = _local_mask(n, res_m, poly)
        classes[sl][m] = WorldClass[kind.upper()]
        albedo[sl][m] = {"grass": style.grass, "soil": style.soil, "parking": style.asphalt}[kind]
        if kind == "parking":  # painted bays
            c, s = math.cos(poly[0, 0] * 0 + rng.uniform(0, math.pi)), 0.0
            yaw = math.atan2(poly[1, 1] - poly[0, 1], poly[1, 0] - poly[0, 0])
            d = np.array([math.cos(yaw), math.sin(yaw)])
            e = np.array([-d[1], d[0]])
            for k in range(-6, 7):
                a = np.array([cx, cy]) + d * k * 2.6 - e * 2.5
                b = a + e * 5.0
                cv2.line(albedo, tuple(_poly_px(n, res_m, a[None])[0]), tuple(_poly_px(n, res_m, b[None])[0]),
                         style.marking, px(0.15), cv2.LINE_AA, shift=2)
            del c, s

    roads = _road_network(style, rng, size_m)
    sidewalk_mask = np.zeros((n, n), np.uint8)
    road_mask = np.zeros((n, n), np.uint8)
    for road in roads:
        pts = _poly_px(n, res_m, road.polyline)
        cv2.polylines(sidewalk_mask, [pts], False, 1, px(road.width_m + 2 * style.sidewalk_m), cv2.LINE_8, shift=2)
        cv2.polylines(road_mask, [pts], False, 1, px(road.width_m), cv2.LINE_8, shift=2)
    side = sidewalk_mask.astype(bool) & ~road_mask.astype(bool)
    road_b = road_mask.astype(bool)
    classes[side] = WorldClass.SIDEWALK
    albedo[side] = style.sidewalk
    classes[road_b] = WorldClass.ROAD
    albedo[road_b] = style.asphalt
    # Curb lines and lane markings.
    for road in roads:
        pts = _poly_px(n, res_m, road.polyline)
        seg = np.linalg.norm(np.diff(road.polyline, axis=0), axis=1)
        s = np.concatenate([[0], np.cumsum(seg)])
        color = style.marking if rng.random() < 0.7 else (220, 190, 60)
        dash = (np.floor(s / 4.5) % 2 == 0)
        for k in range(len(pts) - 1):
            if dash[k]:
                cv2.line(albedo, tuple(pts[k]), tuple(pts[k + 1]), color, px(0.15), cv2.LINE_AA, shift=2)
        if road.width_m >= 9:
            d = np.gradient(road.polyline, axis=0)
            d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
            nrm = np.stack([-d[:, 1], d[:, 0]], -1)
            for sign in (-1, 1):
                edge = road.polyline + sign * nrm * (road.width_m / 2 - 0.6)
                cv2.polylines(albedo, [_poly_px(n, res_m, edge)], False, style.marking, px(0.12), cv2.LINE_AA, shift=2)
    # Crosswalks just outside intersections.
    for point, i, j in _segment_intersections(roads):
        for road, other in ((roads[i], roads[j]), (roads[j], roads[i])):
            k = int(np.argmin(np.linalg.norm(road.polyline - point, axis=1)))
            k2 = min(k + 1, len(road.polyline) - 1)
            d = road.polyline[k2] - road.polyline[max(k2 - 1, 0)]
            d = d / (np.linalg.norm(d) + 1e-9)
            nrm = np.array([-d[1], d[0]])
            for sign in (-1, 1):
                centre = point + sign * d * (other.width_m / 2 + style.sidewalk_m * 0.5 + 1.5)
                for t in np.arange(-road.width_m / 2 + 0.5, road.width_m / 2 - 0.3, 1.0):
                    stripe = _rect(*(centre + nrm * t), 2.5, 0.5, math.atan2(d[1], d[0]))
                    cv2.fillPoly(albedo, [_poly_px(n, res_m, stripe)], style.marking, cv2.LINE_AA, shift=2)

    ground_height = np.zeros((n, n), np.float32)
    ground_height[side] = SIDEWALK_HEIGHT_M
    height = ground_height.copy()
    building_id = np.full((n, n), -1, np.int16)
    facade_colors = []
    blocked = cv2.dilate(sidewalk_mask, np.ones((px(1.0) * 2 + 1,) * 2, np.uint8)).astype(bool)

    # Buildings: rectangles in the blocks (centres drawn where the free space is wide enough),
    # aligned with the grid plus noise.
    free = (~blocked).astype(np.uint8)
    clearance = cv2.distanceTransform(free, cv2.DIST_L2, 5) * res_m
    lots = int(style.building_density * size_m * size_m / (np.mean(style.building_size_m) ** 2) * 3)
    for _ in range(lots):
        length, width = rng.uniform(*style.building_size_m, 2)
        half_min = 0.5 * min(length, width)
        spots = np.flatnonzero(clearance.ravel()[:: 97] >= half_min)
        if not len(spots):
            continue
        cell = spots[rng.integers(len(spots))] * 97
        rr, cc = divmod(int(cell), n)
        cx, cy = (cc - (n - 1) / 2) * res_m, -(rr - (n - 1) / 2) * res_m
        yaw = rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.04)
        poly = _rect(cx, cy, length, width, yaw)
        sl, m = _local_mask(n, res_m, poly)
        if not m.any() or (m & (blocked[sl] | (building_id[sl] >= 0))).any():
            continue
        bid = len(facade_colors)
        facade_colors.append(_jitter_color(rng, style.facades[rng.integers(len(style.facades))]))
        h = float(rng.uniform(*style.building_height_m))
        roof = np.array(_jitter_color(rng, style.roofs[rng.integers(len(style.roofs))], 10), np.float32)
        building_id[sl][m] = bid
        classes[sl][m] = WorldClass.BUILDING
        height[sl][m] = h
        albedo[sl][m] = roof
        clearance[sl][m] = 0
        grown = cv2.dilate(m.astype(np.uint8), np.ones((px(2.0) * 2 + 1,) * 2, np.uint8)).astype(bool)
        clearance[sl][grown] = 0
        rim = m & ~cv2.erode(m.astype(np.uint8), np.ones((px(0.5) * 2 + 1,) * 2, np.uint8)).astype(bool)
        albedo[sl][rim] = roof * 0.75
        for _ in range(int(rng.integers(0, 4))):  # rooftop units
            ux, uy = poly.mean(0) + rng.uniform(-0.3, 0.3, 2) * np.array([length, width])
            usl, um = _local_mask(n, res_m, _rect(ux, uy, rng.uniform(1.5, 4), rng.uniform(1.5, 3), yaw))
            um = um & (building_id[usl] == bid)
            height[usl][um] = h + rng.uniform(1.0, 2.5)
            albedo[usl][um] = _jitter_color(rng, (175, 178, 180), 15)
    facade_arr = np.array(facade_colors or [(180, 180, 180)], np.uint8)

    # Texture: low-frequency shading and grain, so that surfaces carry features to match.
    shade = 1.0 + _low_freq_noise(rng, n, max(4, int(size_m / 4)), 0.04)
    grain = rng.normal(0, 6.0, (n, n)).astype(np.float32)
    albedo = albedo * shade[..., None] + grain[..., None]
    ground_albedo = np.clip(albedo, 0, 255).astype(np.uint8)
    ground_classes = classes.copy()

    # Trees along sidewalks and in green areas: floating canopies.
    candidates = []
    for road in roads:
        seg = np.linalg.norm(np.diff(road.polyline, axis=0), axis=1)
        length = seg.sum()
        count = int(length / 100 * style.tree_density)
        d = np.gradient(road.polyline, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        for _ in range(count):
            k = rng.integers(len(road.polyline))
            nrm = np.array([-d[k, 1], d[k, 0]]) * rng.choice([-1, 1])
            candidates.append(road.polyline[k] + nrm * (road.width_m / 2 + style.sidewalk_m * 0.6 + rng.uniform(0, 2)))
    for _ in range(int(style.tree_density * size_m * size_m / 4000)):
        candidates.append(rng.uniform(-size_m / 2, size_m / 2, 2))
    yy, xx = np.mgrid[-60:61, -60:61].astype(np.float32)
    for centre in candidates:
        radius = rng.uniform(1.8, 4.0)
        top = rng.uniform(*style.tree_height_m)
        rr, cc, inside = world_cell(centre, n, res_m)
        if not inside:
            continue
        rpx = int(radius / res_m) + 1
        r0, r1, c0, c1 = max(rr - rpx, 0), min(rr + rpx + 1, n), max(cc - rpx, 0), min(cc + rpx + 1, n)
        if (building_id[r0:r1, c0:c1] >= 0).any() or (classes[r0:r1, c0:c1] == WorldClass.ROAD).mean() > 0.3:
            continue
        ly = (np.arange(r0, r1) - rr)[:, None] * res_m
        lx = (np.arange(c0, c1) - cc)[None, :] * res_m
        wob = 1 + 0.15 * np.sin(np.arctan2(ly, lx) * rng.integers(3, 7) + rng.uniform(0, 6))
        d2 = (lx**2 + ly**2) / (radius * wob) ** 2
        inside_canopy = d2 < 1
        dome = top - (top - CANOPY_BOTTOM_M) * 0.35 * d2
        sub_h = height[r0:r1, c0:c1]
        new = inside_canopy & (dome > sub_h)
        sub_h[new] = dome[new]
        leaf = np.array(_jitter_color(rng, (62, 105, 48), 12), np.float32)
        tex = 1 + rng.normal(0, 0.12, new.shape) - 0.25 * d2
        albedo[r0:r1, c0:c1][new] = (leaf * tex[..., None])[new]
        classes[r0:r1, c0:c1][new] = WorldClass.TREE
    del yy, xx

    # Vehicles: parked along the kerb, moving in lanes.
    vehicles: list[Vehicle] = []
    for road in roads:
        d = np.gradient(road.polyline, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        length = np.linalg.norm(np.diff(road.polyline, axis=0), axis=1).sum()
        for moving, density, offset in ((False, style.parked_density, road.width_m / 2 - 1.3),
                                        (True, style.moving_density, road.width_m / 4)):
            for _ in range(int(length / 100 * density)):
                k = int(rng.integers(len(road.polyline)))
                side_sign = rng.choice([-1, 1])
                nrm = np.array([-d[k, 1], d[k, 0]])
                pos = road.polyline[k] + nrm * offset * side_sign
                yaw = math.atan2(d[k, 1], d[k, 0]) + (math.pi if side_sign > 0 else 0.0)
                vehicles.append(Vehicle(float(pos[0]), float(pos[1]), yaw, float(rng.uniform(3.8, 5.0)),
                                        float(rng.uniform(1.7, 2.0)),
                                        _jitter_color(rng, [(200, 200, 205), (30, 30, 35), (150, 20, 25),
                                                            (40, 60, 130), (120, 120, 125)][rng.integers(5)], 15), moving))
    moving_mask = np.zeros((n, n), bool)
    for v in vehicles:
        sl, m = _local_mask(n, res_m, _rect(v.x, v.y, v.length_m, v.width_m, v.yaw))
        m = m & (classes[sl] != WorldClass.BUILDING) & (classes[sl] != WorldClass.TREE)
        if not m.any():
            continue
        height[sl][m] = np.maximum(height[sl][m], 1.5)
        classes[sl][m] = WorldClass.VEHICLE
        albedo[sl][m] = v.color
        c, s_ = math.cos(v.yaw), math.sin(v.yaw)
        gsl, glass = _local_mask(n, res_m, _rect(v.x + 0.9 * c, v.y + 0.9 * s_, 0.7, v.width_m * 0.8, v.yaw))
        glass = glass & (classes[gsl] == WorldClass.VEHICLE)
        albedo[gsl][glass] = (40, 45, 55)
        if v.moving:
            moving_mask[sl] |= m
    # Poles along sidewalks.
    for road in roads:
        for k in range(0, len(road.polyline), max(1, int(30 / 8))):
            if rng.random() < 0.3:
                d = road.polyline[min(k + 1, len(road.polyline) - 1)] - road.polyline[max(k - 1, 0)]
                d = d / (np.linalg.norm(d) + 1e-9)
                pos = road.polyline[k] + np.array([-d[1], d[0]]) * (road.width_m / 2 + 0.5)
                rr, cc, inside = world_cell(pos, n, res_m)
                if inside and classes[rr, cc] == WorldClass.SIDEWALK:
                    sl = (slice(max(rr - 1, 0), rr + 2), slice(max(cc - 1, 0), cc + 2))
                    height[sl] = 6.0
                    classes[sl] = WorldClass.POLE
                    albedo[sl] = (90, 90, 95)

    return World(style, seed, size_m, res_m, np.clip(albedo, 0, 255).astype(np.uint8), height, classes,
                 ground_albedo, ground_height, ground_classes, building_id, facade_arr, roads, vehicles, moving_mask)


def world_cell(xy: np.ndarray, n: int, res_m: float) -> tuple[int, int, bool]:
    c = int(round(xy[0] / res_m + (n - 1) / 2))
    r = int(round(-xy[1] / res_m + (n - 1) / 2))
    return r, c, (0 <= r < n and 0 <= c < n)
