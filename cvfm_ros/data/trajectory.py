"""Plan a realistic drive along a road network: route, lane, smooth corners and a speed profile.

A road network is a list of centre-line polylines in `map` metres. `build_road_graph` joins them
into a graph (polyline endpoints and crossings become junctions, with a snapping tolerance);
`plan_drive` walks the graph at random (preferring turns, avoiding dead ends), offsets the route
onto the right-hand lane, rounds every corner with a circular arc (so the heading never jumps),
and drives it with a speed profile that accelerates, brakes, slows for curvature and stops at
some junctions. The result is sampled at a fixed rate as a `Trajectory`.

Convention (docs/CONVENTIONS.md): positions in metres in `map` (x east, y north); yaw is
the heading of base_link, counter-clockwise from east, wrapped to (-pi, pi]; yaw rate in rad/s
(positive = turning left); speeds in m/s along base_link +x; time in seconds from the start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from cvfm_ros.geometry import SE2, check_tensor, wrap_angle


def check_array(name: str, value: object, spec: tuple, sizes: dict[str, int] | None = None) -> np.ndarray:
    """Raise ValueError naming `name` unless `value` is a finite float numpy array of shape `spec`.

    `spec` follows `cvfm_ros.geometry.check_tensor` (ints, named sizes, leading `...`); the
    array is returned as float64.
    """
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise ValueError(f"{name}: expected a numeric array, got dtype {value.dtype}")
    arr = value.astype(np.float64, copy=False)
    check_tensor(name, torch.from_numpy(np.ascontiguousarray(arr)), spec, sizes)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return arr


# --------------------------------------------------------------------------------------------
# Trajectory


@dataclass(frozen=True)
class Trajectory:
    """A planar drive sampled at increasing times: every field is a float64 array of shape (N,).

    t: seconds from the start; x, y: metres in `frame_id`; yaw: radians CCW from +x, wrapped to
    (-pi, pi]; v: forward speed m/s; yaw_rate: rad/s.
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    v: np.ndarray
    yaw_rate: np.ndarray
    frame_id: str = "map"

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name in ("t", "x", "y", "yaw", "v", "yaw_rate"):
            object.__setattr__(self, name, check_array(f"Trajectory.{name}", getattr(self, name), ("N",), sizes))
        if sizes["N"] < 1:
            raise ValueError("Trajectory: expected at least one sample")
        if sizes["N"] > 1 and not (np.diff(self.t) > 0).all():
            raise ValueError("Trajectory.t: expected strictly increasing times")

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0])

    @property
    def path_length_m(self) -> float:
        """Length of the sampled polyline (a lower bound of the distance driven)."""
        return float(np.hypot(np.diff(self.x), np.diff(self.y)).sum())

    def poses(self) -> SE2:
        """SE2 of shape (N,) (data (N, 3), float64)."""
        return SE2(torch.from_numpy(np.stack([self.x, self.y, self.yaw], -1).copy()))

    def stamps_ns(self, start_ns: int = 0) -> np.ndarray:
        """(N,) int64 ROS stamps: `start_ns` plus t, rounded to the nanosecond."""
        return int(start_ns) + np.round(self.t * 1e9).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Road graph


@dataclass(frozen=True)
class RoadEdge:
    """A road piece between two junctions: polyline (M, 2) from node `a` to node `b`."""

    a: int
    b: int
    points: np.ndarray
    length: float


@dataclass(frozen=True)
class RoadGraph:
    """Junctions `nodes` (J, 2) in metres and the road pieces joining them."""

    nodes: np.ndarray
    edges: tuple[RoadEdge, ...]

    def degree(self, node: int) -> int:
        return sum((e.a == node) + (e.b == node) for e in self.edges)

    def incident(self, node: int) -> list[tuple[int, bool]]:
        """(edge index, forward) for every way of leaving `node` (a self-loop gives two)."""
        out = []
        for i, e in enumerate(self.edges):
            if e.a == node:
                out.append((i, True))
            if e.b == node:
                out.append((i, False))
        return out


def _clean_polyline(points: np.ndarray, min_step: float) -> np.ndarray:
    keep = [0]
    for i in range(1, len(points)):
        if np.hypot(*(points[i] - points[keep[-1]])) > min_step:
            keep.append(i)
    return points[keep]


def _segment_intersections(segs: np.ndarray, owner: np.ndarray, index: np.ndarray, eps: float = 1e-9):
    """All proper crossings between segments (S, 2, 2): yields (i, t_i, j, t_j) pairs with
    t in [0, 1] along each segment. Adjacent segments of one polyline are skipped."""
    p, r = segs[:, 0], segs[:, 1] - segs[:, 0]
    i, j = np.triu_indices(len(segs), k=1)
    same = owner[i] == owner[j]
    keep = ~(same & (np.abs(index[i] - index[j]) <= 1))
    i, j = i[keep], j[keep]
    denom = r[i, 0] * r[j, 1] - r[i, 1] * r[j, 0]
    qp = p[j] - p[i]
    ok = np.abs(denom) > eps
    with np.errstate(divide="ignore", invalid="ignore"):
        ti = (qp[:, 0] * r[j, 1] - qp[:, 1] * r[j, 0]) / denom
        tj = (qp[:, 0] * r[i, 1] - qp[:, 1] * r[i, 0]) / denom
    ok &= (ti >= -1e-9) & (ti <= 1 + 1e-9) & (tj >= -1e-9) & (tj <= 1 + 1e-9)
    return [(int(a), float(np.clip(ta, 0, 1)), int(b), float(np.clip(tb, 0, 1)))
            for a, ta, b, tb in zip(i[ok], ti[ok], j[ok], tj[ok])]


def build_road_graph(roads: Sequence[np.ndarray], tolerance_m: float = 1.0) -> RoadGraph:
    """Join centre-line polylines (each (K, 2), K >= 2, metres) into a junction graph.

    Junctions are polyline endpoints, crossings between polylines, and endpoints lying within
    `tolerance_m` of another polyline (a T junction drawn slightly short or long); junction
    candidates closer than `tolerance_m` are merged. A closed polyline (first point = last)
    becomes a loop.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if not isinstance(roads, (list, tuple)) or not roads:
        raise ValueError("roads: expected a non-empty list of (K, 2) polylines")
    if not tolerance_m > 0:
        raise ValueError(f"tolerance_m: expected a positive distance, got {tolerance_m}")
    lines = []
    for k, road in enumerate(roads):
        pts = _clean_polyline(check_array(f"roads[{k}]", road, ("K", 2)), 1e-6)
        if len(pts) < 2:
            raise ValueError(f"roads[{k}]: expected at least two distinct points")
        lines.append(pts)

    segs, owner, index = [], [], []
    for k, pts in enumerate(lines):
        for s in range(len(pts) - 1):
            segs.append(pts[s:s + 2])
            owner.append(k)
            index.append(s)
    segs_a, owner_a, index_a = np.asarray(segs), np.asarray(owner), np.asarray(index)

    # Split points per polyline as a parameter: segment index + fraction along it.
    splits: list[list[float]] = [[0.0, float(len(pts) - 1)] for pts in lines]
    for a, ta, b, tb in _segment_intersections(segs_a, owner_a, index_a):
        splits[owner_a[a]].append(index_a[a] + ta)
        splits[owner_a[b]].append(index_a[b] + tb)
    # Endpoints that stop short of (or overshoot) another road within the tolerance.
    p0, d = segs_a[:, 0], segs_a[:, 1] - segs_a[:, 0]
    dd = np.maximum((d * d).sum(-1), 1e-12)
    for k, pts in enumerate(lines):
        for end in (pts[0], pts[-1]):
            t = np.clip(((end - p0) * d).sum(-1) / dd, 0.0, 1.0)
            dist = np.hypot(*(p0 + t[:, None] * d - end).T)
            cand = np.where((dist <= tolerance_m) & (owner_a != k))[0]
            for s in cand:
                splits[owner_a[s]].append(index_a[s] + float(t[s]))

    def point_at(k: int, param: float) -> np.ndarray:
        pts = lines[k]
        s = min(int(math.floor(param)), len(pts) - 2)
        return pts[s] + (param - s) * (pts[s + 1] - pts[s])

    split_params = [sorted(set(round(p, 9) for p in sp)) for sp in splits]
    cand_pts, cand_ref = [], []
    for k, params in enumerate(split_params):
        for p in params:
            cand_pts.append(point_at(k, p))
            cand_ref.append((k, p))
    cand_arr = np.asarray(cand_pts)
    pairs = cKDTree(cand_arr).query_pairs(tolerance_m, output_type="ndarray")
    n = len(cand_arr)
    adj = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else coo_matrix((n, n))
    n_nodes, label = connected_components(adj, directed=False)
    nodes = np.zeros((n_nodes, 2))
    np.add.at(nodes, label, cand_arr)
    nodes /= np.bincount(label, minlength=n_nodes)[:, None]
    node_of = {ref: int(label[i]) for i, ref in enumerate(cand_ref)}

    edges: list[RoadEdge] = []
    for k, params in enumerate(split_params):
        pts = lines[k]
        for p_start, p_end in zip(params[:-1], params[1:]):
            a, b = node_of[(k, p_start)], node_of[(k, p_end)]
            interior = [pts[i] for i in range(int(math.floor(p_start)) + 1, int(math.ceil(p_end)))
                        if p_start < i < p_end]
            poly = _clean_polyline(np.asarray([nodes[a], *interior, nodes[b]]), 1e-6)
            if len(poly) < 2:
                continue
            length = float(np.hypot(*np.diff(poly, axis=0).T).sum())
            # Pieces shorter than the tolerance were absorbed into a junction.
            if length <= tolerance_m and a == b:
                continue
            edges.append(RoadEdge(a, b, poly, length))
    if not edges:
        raise ValueError("roads: the polylines form no drivable road (all shorter than the tolerance?)")
    return RoadGraph(nodes, tuple(edges))


# --------------------------------------------------------------------------------------------
# Drive profile and planning


@dataclass(frozen=True)
class DriveProfile:
    """How the simulated driver drives. Speeds m/s, accelerations m/s^2, distances m, times s."""

    cruise_speed_range: tuple[float, float] = (9.0, 12.0)  # per road piece, uniform
    max_accel: float = 1.5
    max_decel: float = 2.5
    max_lateral_accel: float = 2.0                           # sets the speed in curves
    corner_radius: float = 8.0                               # arc radius rounding road joints
    lane_offset: float = 1.75                                # centre line -> lane centre
    right_hand_traffic: bool = True
    turn_preference: float = 2.0                             # weight of a turn vs going straight
    stop_probability: float = 0.35                           # per junction of 3+ roads
    stop_duration_range: tuple[float, float] = (2.0, 6.0)
    stop_line_offset: float = 5.0                            # stop this far before the junction
    junction_tolerance: float = 1.0

    def __post_init__(self) -> None:
        lo, hi = self.cruise_speed_range
        if not 0 < lo <= hi:
            raise ValueError(f"cruise_speed_range: expected 0 < low <= high, got {self.cruise_speed_range}")
        for name in ("max_accel", "max_decel", "max_lateral_accel", "corner_radius", "junction_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive value, got {getattr(self, name)}")
        if self.lane_offset < 0 or self.stop_line_offset < 0 or self.turn_preference <= 0:
            raise ValueError("lane_offset and stop_line_offset must be >= 0, turn_preference > 0")
        if not 0 <= self.stop_probability <= 1:
            raise ValueError(f"stop_probability: expected a probability, got {self.stop_probability}")
        lo, hi = self.stop_duration_range
        if not 0 <= lo <= hi:
            raise ValueError(f"stop_duration_range: expected 0 <= low <= high, got {self.stop_duration_range}")


@dataclass
class _Route:
    points: np.ndarray                 # centre line (M, 2)
    vertex_junction: list[int | None]  # node id at a vertex that is a junction, else None
    vertex_speed: list[float]          # cruise speed of the piece starting at each vertex
    uturn: list[bool]                  # vertex is a dead-end turn-around
    junction_degree: dict[int, int] = field(default_factory=dict)


def _heading(v: np.ndarray) -> float:
    return math.atan2(float(v[1]), float(v[0]))


def _walk(graph: RoadGraph, length_needed: float, rng: np.random.Generator, profile: DriveProfile) -> _Route:
    degree = {n: graph.degree(n) for n in range(len(graph.nodes))}
    lengths = np.array([e.length for e in graph.edges])
    through = np.array([degree[e.a] > 1 and degree[e.b] > 1 for e in graph.edges])
    weights = lengths * (through if through.any() else 1.0)
    edge_i = int(rng.choice(len(graph.edges), p=weights / weights.sum()))
    forward = bool(rng.integers(2))

    def oriented(i: int, fwd: bool) -> np.ndarray:
        return graph.edges[i].points if fwd else graph.edges[i].points[::-1]

    # Start somewhere along the first piece, not always at a junction.
    pts = oriented(edge_i, forward)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s0 = rng.uniform(0, 0.5) * seg.sum()
    cum = np.concatenate([[0], np.cumsum(seg)])
    j = int(np.searchsorted(cum, s0, side="right") - 1)
    if 0 < cum[j + 1] - s0 < 2 * profile.corner_radius and j + 1 < len(pts) - 1:
        # Starting just before a bend would force a tight turn from rest: start after it.
        j += 1
        s0 = cum[j]
    start = pts[j] + (s0 - cum[j]) / max(seg[j], 1e-12) * (pts[j + 1] - pts[j])
    points = [start, *pts[j + 1:]]
    speed = float(rng.uniform(*profile.cruise_speed_range))
    vertex_speed = [speed] * len(points)
    vertex_junction: list[int | None] = [None] * (len(points) - 1) + [None]
    uturn = [False] * len(points)
    total = float(seg.sum() - s0)
    end_node = graph.edges[edge_i].b if forward else graph.edges[edge_i].a
    vertex_junction[-1] = end_node

    while total < length_needed:
        arrive_dir = points[-1] - points[-2]
        options = [(i, f) for i, f in graph.incident(end_node) if not (i == edge_i and f != forward)]
        live = [(i, f) for i, f in options if degree[graph.edges[i].b if f else graph.edges[i].a] > 1]
        is_uturn = False
        if live:
            options = live
        elif not options:
            options = [(edge_i, not forward)]
            is_uturn = True
        w = []
        for i, f in options:
            leave = oriented(i, f)
            turn = abs(wrap_angle(_heading(leave[1] - leave[0]) - _heading(arrive_dir)))
            w.append(profile.turn_preference if turn > math.radians(30) else 1.0)
        w_arr = np.asarray(w)
        edge_i, forward = options[int(rng.choice(len(options), p=w_arr / w_arr.sum()))]
        uturn[-1] = is_uturn
        pts = oriented(edge_i, forward)
        speed = float(rng.uniform(*profile.cruise_speed_range))
        vertex_speed[-1] = speed
        for p in pts[1:]:
            points.append(p)
            vertex_speed.append(speed)
            vertex_junction.append(None)
            uturn.append(False)
        end_node = graph.edges[edge_i].b if forward else graph.edges[edge_i].a
        vertex_junction[-1] = end_node
        total += graph.edges[edge_i].length
    return _Route(np.asarray(points), vertex_junction, vertex_speed, uturn, degree)


def _offset_route(route: _Route, offset: float) -> tuple[np.ndarray, list[int]]:
    """Shift the centre line onto the lane `offset` metres to the right (negative: left).

    Returns the lane polyline and, for each of its vertices, the centre-line vertex it came from.
    A dead-end turn-around becomes two vertices across the road, joined by a segment that the
    corner rounding turns into a U-turn.
    """
    pts = route.points
    d = np.diff(pts, axis=0)
    d /= np.maximum(np.hypot(*d.T), 1e-12)[:, None]
    right = np.stack([d[:, 1], -d[:, 0]], -1)
    out, src = [pts[0] + offset * right[0]], [0]
    for i in range(1, len(pts) - 1):
        r1, r2 = right[i - 1], right[i]
        if route.uturn[i] or float(d[i - 1] @ d[i]) < -0.99:
            out += [pts[i] + offset * r1, pts[i] + offset * r2]
            src += [i, i]
            continue
        bis = r1 + r2
        norm = np.hypot(*bis)
        cos_half = norm / 2
        if cos_half < 0.35:
            # Very sharp corner: a miter would shoot far out, bevel it instead.
            out += [pts[i] + offset * r1, pts[i] + offset * r2]
            src += [i, i]
        else:
            out.append(pts[i] + offset * bis / norm / cos_half)
            src.append(i)
    out.append(pts[-1] + offset * right[-1])
    src.append(len(pts) - 1)
    return np.asarray(out), src


@dataclass
class _Path:
    """A G1 path of lines and circular arcs: per primitive its start arc length, length, start
    point, start heading and (constant) curvature."""

    s0: np.ndarray
    length: np.ndarray
    p0: np.ndarray
    h0: np.ndarray
    kappa: np.ndarray

    @property
    def total(self) -> float:
        return float(self.s0[-1] + self.length[-1])

    def evaluate(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Arc lengths (N,) -> x, y, heading (unwrapped), curvature, each (N,)."""
        k = np.clip(np.searchsorted(self.s0, s, side="right") - 1, 0, len(self.s0) - 1)
        u = s - self.s0[k]
        kap, h = self.kappa[k], self.h0[k]
        h1 = h + kap * u
        straight = np.abs(kap) < 1e-12
        safe = np.where(straight, 1.0, kap)
        dx = np.where(straight, u * np.cos(h), (np.sin(h1) - np.sin(h)) / safe)
        dy = np.where(straight, u * np.sin(h), (np.cos(h) - np.cos(h1)) / safe)
        return self.p0[k, 0] + dx, self.p0[k, 1] + dy, h1, kap


def _round_corners(poly: np.ndarray, radius: float, wide_radius: float, max_cut: float = 0.3) -> tuple[_Path, np.ndarray]:
    """Replace every corner of `poly` by a tangent circular arc. A corner gets `wide_radius`
    when that arc stays within `max_cut` metres of the corner (a gentle bend, driven at speed),
    else `radius`; either shrinks where the neighbouring segments are short. Returns the path
    and, per polyline vertex, the arc length of the path point nearest to it."""
    d = np.diff(poly, axis=0)
    seg = np.hypot(*d.T)
    d = d / np.maximum(seg, 1e-12)[:, None]
    n = len(poly)
    theta = np.zeros(n)
    for i in range(1, n - 1):
        theta[i] = wrap_angle(_heading(d[i]) - _heading(d[i - 1]))
    tangent = np.zeros(n)
    for i in range(1, n - 1):
        if abs(theta[i]) > 1e-9:
            # Half of each neighbouring segment, or all of it at the ends of the polyline where
            # no other corner competes for it.
            room_in = seg[i - 1] * (1.0 if i == 1 else 0.5)
            room_out = seg[i] * (1.0 if i == n - 2 else 0.5)
            half = abs(theta[i]) / 2
            r = wide_radius if wide_radius * (1 / math.cos(half) - 1) <= max_cut else radius
            tangent[i] = min(r * math.tan(half), room_in, room_out)
    s0, length, p0, h0, kappa = [], [], [], [], []
    vertex_s = np.zeros(n)
    s, cur = 0.0, poly[0].copy()

    def add(start, hd, ln, kp):
        nonlocal s
        if ln <= 1e-9:
            return
        s0.append(s), length.append(ln), p0.append(np.array(start)), h0.append(hd), kappa.append(kp)
        s += ln

    for i in range(1, n - 1):
        t_in = poly[i] - d[i - 1] * tangent[i]
        add(cur, _heading(d[i - 1]), float(np.hypot(*(t_in - cur))), 0.0)
        if tangent[i] > 0:
            r = tangent[i] / math.tan(abs(theta[i]) / 2)
            arc = r * abs(theta[i])
            vertex_s[i] = s + arc / 2
            add(t_in, _heading(d[i - 1]), arc, math.copysign(1.0 / r, theta[i]))
            cur = poly[i] + d[i] * tangent[i]
        else:
            vertex_s[i] = s
            cur = t_in
    add(cur, _heading(d[-1]), float(np.hypot(*(poly[-1] - cur))), 0.0)
    vertex_s[-1] = s
    # Headings are unwrapped so that the path heading is continuous across primitives.
    h = np.unwrap(np.asarray(h0))
    return _Path(np.asarray(s0), np.asarray(length), np.asarray(p0), h, np.asarray(kappa)), vertex_s


def _drive(graph: RoadGraph, needed: float, rng: np.random.Generator, profile: DriveProfile):
    """Route, lane, corners and speed profile. Returns the path, the arc-length grid, the speed
    at each grid point, and the times the vehicle reaches and leaves each grid point."""
    route = _walk(graph, needed, rng, profile)
    offset = profile.lane_offset if profile.right_hand_traffic else -profile.lane_offset
    lane, src = _offset_route(route, offset)
    # Gentle bends of a road are driven at cruise speed on wide arcs; real corners on tight ones.
    path, vertex_s = _round_corners(lane, profile.corner_radius, profile.cruise_speed_range[1] ** 2 / profile.max_lateral_accel)

    # Speed limits on a fine arc-length grid: the piece's cruise speed, and the curve limit
    # v = sqrt(a_lat / |kappa|).
    ds = 0.25
    n_grid = max(int(math.ceil(path.total / ds)), 1)
    s_grid = np.linspace(0.0, path.total, n_grid + 1)
    # Each grid point takes the sharpest curvature of any arc touching its neighbouring cells:
    # a cell's speed lies between its end speeds, so no arc, however short, is entered too fast.
    kap = np.zeros(len(s_grid))
    for s0, ln, k in zip(path.s0, path.length, np.abs(path.kappa)):
        if k > 0:
            lo, hi = int(math.floor(s0 / ds)), int(math.ceil((s0 + ln) / ds))
            kap[max(lo, 0):min(hi, n_grid) + 1] = np.maximum(kap[max(lo, 0):min(hi, n_grid) + 1], k)
    lane_vertex_speed = np.asarray([route.vertex_speed[i] for i in src])
    idx = np.clip(np.searchsorted(vertex_s, s_grid, side="right") - 1, 0, len(vertex_s) - 1)
    v_lim = np.minimum(lane_vertex_speed[idx], np.sqrt(profile.max_lateral_accel / np.maximum(kap, 1e-9)))
    v_lim[0] = 0.0  # start from rest
    dwell = np.zeros(len(s_grid))
    seen = set()
    for lane_i, centre_i in enumerate(src):
        node = route.vertex_junction[centre_i]
        if node is None or centre_i in seen or route.junction_degree.get(node, 0) < 3:
            continue
        seen.add(centre_i)
        if rng.random() < profile.stop_probability:
            g = int(np.searchsorted(s_grid, vertex_s[lane_i] - profile.stop_line_offset))
            # A stop needs room to brake and to drive off: none in the first or last metres
            # or right after another stop (two zero speeds in a row would never get going).
            if 8 <= g <= n_grid - 8 and not (v_lim[g - 8:g + 9] == 0).any():
                dwell[g] = float(rng.uniform(*profile.stop_duration_range))
                v_lim[g] = 0.0
    v = v_lim.copy()
    cell = float(s_grid[1] - s_grid[0])
    for i in range(1, len(v)):
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * profile.max_accel * cell))
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * profile.max_decel * cell))

    # Constant acceleration within each cell (v^2 linear in s) gives dt = 2 ds / (v_i + v_i+1);
    # a stop adds its dwell before the vehicle leaves the stop point.
    dt = 2 * np.diff(s_grid) / np.maximum(v[:-1] + v[1:], 1e-9)
    t_arrive = np.concatenate([[0.0], np.cumsum(dt + dwell[:-1])])
    return path, s_grid, v, t_arrive, t_arrive + dwell


def plan_drive(
    roads: Sequence[np.ndarray],
    duration_s: float,
    rate_hz: float = 10.0,
    seed: int = 0,
    profile: DriveProfile | None = None,
) -> Trajectory:
    """Plan a `duration_s` drive on the road network `roads` and sample it at `rate_hz`.

    roads: list of centre-line polylines, each a (K, 2) array in `map` metres.
    Returns a `Trajectory` of N = floor(duration_s * rate_hz) + 1 samples starting at t = 0 from
    rest. Convention: yaw CCW from east in (-pi, pi]; the vehicle drives on the right-hand lane
    (`profile.lane_offset` from the centre line) unless `profile.right_hand_traffic` is False.
    The route is a random walk over the junction graph seeded by `seed`: it prefers turns,
    avoids dead ends where it can and turns around at one where it cannot.
    """
    profile = profile or DriveProfile()
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s: expected a positive duration, got {duration_s}")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz: expected a positive rate, got {rate_hz}")
    rng = np.random.default_rng(seed)
    graph = build_road_graph(roads, profile.junction_tolerance)
    # Speed never exceeds the top cruise speed, so this much road nearly always takes longer
    # than duration_s; lane offsets and rounded corners shorten it a little, hence the retry.
    needed = duration_s * profile.cruise_speed_range[1] + 50.0
    for _ in range(8):
        path, s_grid, v, t_arrive, t_leave = _drive(graph, needed, rng, profile)
        if t_arrive[-1] >= duration_s:
            break
        needed *= 1.5
    else:  # pragma: no cover - the loop grows the route geometrically
        raise ValueError("roads: could not plan a route long enough for the duration")

    n = int(math.floor(duration_s * rate_hz + 1e-9)) + 1
    t = np.arange(n) / rate_hz
    step = np.diff(s_grid)
    cell = np.clip(np.searchsorted(t_leave, t, side="right") - 1, 0, len(s_grid) - 2)
    span = t_arrive[cell + 1] - t_leave[cell]
    tau = np.clip(t - t_leave[cell], 0.0, span)
    v0, v1 = v[cell], v[cell + 1]
    acc = (v1 ** 2 - v0 ** 2) / (2 * step[cell])
    # During a dwell tau stays at the end of the cell: the vehicle waits at the stop point.
    s = np.minimum(s_grid[cell] + v0 * tau + 0.5 * acc * tau ** 2, s_grid[cell + 1])
    speed = np.where(tau >= span, v1, np.clip(v0 + acc * tau, 0.0, None))
    x, y, heading, kappa = path.evaluate(s)
    return Trajectory(t=t, x=x, y=y, yaw=wrap_angle(heading), v=speed, yaw_rate=kappa * speed)


__all__ = ["DriveProfile", "RoadEdge", "RoadGraph", "Trajectory", "build_road_graph", "check_array", "plan_drive"]
