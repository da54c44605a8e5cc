"""Rendering with exact ground truth: aerial orthophotos and ground panoramas / pinhole views.

Convention (docs/CONVENTIONS.md): aerial images are north-up with OpenCV pixel centres and
georeferenced as `AerialPatch`; ground views follow the panorama / pinhole conventions of
`cvfm_ros.geometry.cameras`; ground-truth 3D points are in `map`.

Ground views are ray cast over the world's height map: per azimuth column the ray marches
outward in steps of one world cell, a running maximum of the elevation angles of the column tops
gives, for every image row, the first step where the ray meets a surface (one `searchsorted` per
column), and flat tops are refined to the exact plane crossing. Rays below the horizon ignore
tree canopies (which float above the camera), so the ground under a canopy is seen from the
street; the aerial view sees the canopy instead, which is what `aerial_visible` records.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ...geometry import SE2, AerialPatch, MetricGrid, MountedCamera, PanoramaCamera
from .world import World, WorldClass

SURFACE_TOL_M = 0.08  # a hit within this of the column top is on the top surface
MAX_RANGE_M = 120.0


class GroundClass(enum.IntEnum):
    GROUND = 0
    FACADE = 1
    ROOF = 2
    VEGETATION = 3
    VEHICLE = 4
    SKY = 5


# ------------------------------------------------------------------------------ appearance
@dataclass
class AerialAppearance:
    sun_azimuth_deg: float = 135.0  # compass direction the sunlight comes from
    sun_elevation_deg: float = 50.0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    vegetation_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # season
    shadow_strength: float = 0.45
    noise_std: float = 3.0
    blur_sigma_px: float = 0.5
    jpeg_quality: int = 85
    move_vehicles: bool = True

    @classmethod
    def random(cls, rng: np.random.Generator) -> "AerialAppearance":
        season = [(1.0, 1.0, 1.0), (1.15, 1.0, 0.75), (0.9, 1.05, 0.9), (1.1, 1.05, 0.95)][rng.integers(4)]
        return cls(float(rng.uniform(0, 360)), float(rng.uniform(30, 70)), tuple(rng.uniform(0.85, 1.15, 3)),
                   season, float(rng.uniform(0.35, 0.6)), float(rng.uniform(1, 6)), float(rng.uniform(0.3, 1.0)),
                   int(rng.integers(45, 92)), True)


@dataclass
class GroundAppearance:
    sun_azimuth_deg: float = 200.0
    sun_elevation_deg: float = 40.0
    exposure: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    haze_m: float = 300.0
    noise_std: float = 2.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> "GroundAppearance":
        return cls(float(rng.uniform(0, 360)), float(rng.uniform(15, 70)), float(rng.uniform(0.75, 1.25)),
                   tuple(rng.uniform(0.9, 1.1, 3)), float(rng.uniform(150, 500)), float(rng.uniform(1, 5)))


def _sun_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards the sun in map (x east, y north, z up); azimuth is compass (from north, cw)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])


# ------------------------------------------------------------------------------ aerial
@dataclass
class AerialRender:
    image: np.ndarray  # (H, W, 3) uint8 with appearance changes
    patch: AerialPatch  # float image (3, H, W) in [0, 1] + georeference
    clean: np.ndarray  # (H, W, 3) uint8: world albedo sampled at pixel centres (nearest), no changes


def _affine_world_to_patch(world: World, grid: MetricGrid) -> np.ndarray:
    """2x3 matrix taking patch pixel (u, v) to world cell (col, row) for cv2.warpAffine(WARP_INVERSE_MAP)."""
    s = grid.cell_m / world.res_m
    c0 = (grid.cx - (grid.cols - 1) / 2 * grid.cell_m) / world.res_m + (world.n - 1) / 2
    r0 = -(grid.cy + (grid.rows - 1) / 2 * grid.cell_m) / world.res_m + (world.n - 1) / 2
    return np.array([[s, 0.0, c0], [0.0, s, r0]])


def _shadow_mask(world: World, grid: MetricGrid, sun: np.ndarray, cell_m: float = 0.5) -> np.ndarray:
    """(rows, cols) bool: patch pixels whose surface is shadowed from the sun (height-map ray march)."""
    tan_el = sun[2] / max(math.hypot(sun[0], sun[1]), 1e-6)
    reach = min(45.0 / max(tan_el, 0.2), 150.0)
    coarse = MetricGrid(int(math.ceil(grid.rows * grid.cell_m / cell_m + 2 * reach / cell_m)),
                        int(math.ceil(grid.cols * grid.cell_m / cell_m + 2 * reach / cell_m)), cell_m, grid.cx, grid.cy)
    m = _affine_world_to_patch(world, coarse)
    # max-pool so thin walls still cast shadows at the coarse resolution
    k = max(1, int(round(cell_m / world.res_m)))
    cache = world.__dict__.setdefault("_dilated_height", {})
    if k not in cache:  # computed once per world
        cache[k] = cv2.dilate(world.height, np.ones((k, k), np.uint8))
    h = cv2.warpAffine(cache[k], m, (coarse.cols, coarse.rows),
                       flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    shadow = np.zeros_like(h, dtype=bool)
    dx, dy = sun[0], -sun[1]  # towards the sun in (col, row)
    norm = math.hypot(dx, dy) + 1e-9
    dx, dy = dx / norm, dy / norm
    steps = int(reach / cell_m)
    rows, cols = h.shape
    for s in range(1, steps + 1):
        oc, orr = int(round(s * dx)), int(round(s * dy))
        if abs(oc) >= cols or abs(orr) >= rows:
            break
        rise = s * cell_m * tan_el
        src = h[max(orr, 0): rows + min(orr, 0), max(oc, 0): cols + min(oc, 0)]
        dst = (slice(max(-orr, 0), rows + min(-orr, 0)), slice(max(-oc, 0), cols + min(-oc, 0)))
        shadow[dst] |= src - rise > h[dst] + 0.1
    # back to the patch resolution
    m2 = np.array([[grid.cell_m / cell_m, 0.0, (coarse.cols - 1) / 2 - (grid.cols - 1) / 2 * grid.cell_m / cell_m],
                   [0.0, grid.cell_m / cell_m, (coarse.rows - 1) / 2 - (grid.rows - 1) / 2 * grid.cell_m / cell_m]])
    out = cv2.warpAffine(shadow.astype(np.float32), m2, (grid.cols, grid.rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return out


def _render_region(world: World, grid: MetricGrid, appearance: AerialAppearance | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = _affine_world_to_patch(world, grid)
    size = (grid.cols, grid.rows)
    clean = cv2.warpAffine(world.albedo, m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    if appearance is None:
        return clean.copy(), clean
    albedo = world.albedo
    classes = world.classes
    sigma = 0.5 * grid.cell_m / world.res_m
    if appearance.move_vehicles and world.vehicle_mask_moving is not None:
        # The aerial image was taken at another time: moving vehicles are elsewhere.
        r0, c0 = (int(v) for v in np.floor(m[::-1, 2]) - 2)
        rows_needed = int(grid.rows * m[1, 1]) + 6
        cols_needed = int(grid.cols * m[0, 0]) + 6
        sl = (slice(max(r0, 0), max(r0, 0) + rows_needed), slice(max(c0, 0), max(c0, 0) + cols_needed))
        local_moving = world.vehicle_mask_moving[sl]
        if local_moving.any():
            albedo = albedo.copy()
            classes = classes.copy()
            albedo[sl][local_moving] = world.ground_albedo[sl][local_moving]
            classes[sl][local_moving] = world.ground_classes[sl][local_moving]
            for v in world.vehicles:
                if not v.moving:
                    continue
                shift = rng.uniform(6, 25) * rng.choice([-1, 1])
                x, y = v.x + shift * math.cos(v.yaw), v.y + shift * math.sin(v.yaw)
                c, r = world.to_cell(np.array(x), np.array(y))
                if not (0 <= c < world.n and 0 <= r < world.n) or world.classes[int(r), int(c)] != WorldClass.ROAD:
                    continue
                from .world import _local_mask, _rect
                vsl, vm = _local_mask(world.n, world.res_m, _rect(x, y, v.length_m, v.width_m, v.yaw))
                albedo[vsl][vm] = v.color
    if sigma > 0.6:
        # Anti-alias only the world cells this patch reads (blurring the whole world is 10x slower).
        pad = int(3 * sigma) + 2
        c0 = max(int(math.floor(m[0, 2])) - pad, 0)
        r0 = max(int(math.floor(m[1, 2])) - pad, 0)
        c1 = min(int(math.ceil(m[0, 2] + m[0, 0] * grid.cols)) + pad, world.n)
        r1 = min(int(math.ceil(m[1, 2] + m[1, 1] * grid.rows)) + pad, world.n)
        if c1 > c0 and r1 > r0:
            crop = cv2.GaussianBlur(albedo[r0:r1, c0:c1], (0, 0), sigma)
            m_crop = m.copy()
            m_crop[0, 2] -= c0
            m_crop[1, 2] -= r0
            image = cv2.warpAffine(crop, m_crop, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        else:
            image = cv2.warpAffine(albedo, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    else:
        image = cv2.warpAffine(albedo, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    cls = cv2.warpAffine(classes, m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    veg = (cls == WorldClass.TREE) | (cls == WorldClass.GRASS)
    image[veg] *= np.array(appearance.vegetation_tint, np.float32)
    sun = _sun_vector(appearance.sun_azimuth_deg, appearance.sun_elevation_deg)
    shadow = _shadow_mask(world, grid, sun)
    shade = 1.0 - appearance.shadow_strength * shadow
    blue_shadow = np.array([1.0, 1.0, 1.0 + 0.15 * appearance.shadow_strength], np.float32)[None, None]
    image *= shade[..., None] * blue_shadow ** shadow[..., None]
    image *= np.array(appearance.gain, np.float32)
    if appearance.blur_sigma_px > 0:
        image = cv2.GaussianBlur(image, (0, 0), appearance.blur_sigma_px)
    image += rng.normal(0, appearance.noise_std, image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(appearance.jpeg_quality)])
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else image
    return image, clean


def render_aerial(world: World, center_xy, size_px: int = 256, mpp: float = 0.2,
                  appearance: AerialAppearance | None = None, rng: np.random.Generator | None = None) -> AerialRender:
    """A north-up aerial patch of `size_px`² pixels at `mpp` centred on `center_xy` (map metres).

    appearance None renders the clean albedo (no shadows, colour changes, noise or JPEG)."""
    if not (8 <= int(size_px) <= 4096):
        raise ValueError(f"size_px: expected 8 to 4096 pixels, got {size_px}")
    if not (0.02 <= mpp <= 5.0):
        raise ValueError(f"mpp: expected 0.02 to 5 metres per pixel, got {mpp}")
    rng = rng or np.random.default_rng(0)
    cx, cy = (float(v) for v in center_xy)
    grid = MetricGrid(int(size_px), int(size_px), float(mpp), cx, cy)
    image, clean = _render_region(world, grid, appearance, rng)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
    return AerialRender(image, AerialPatch(tensor, cx, cy, float(mpp)), clean)


def render_orthophoto(world: World, mpp: float = 0.1, appearance: AerialAppearance | None = None,
                      seed: int = 0) -> tuple[np.ndarray, MetricGrid]:
    """The whole world as one north-up orthophoto (H, W, 3) uint8 and its georeference."""
    n = int(round(world.size_m / mpp))
    grid = MetricGrid(n, n, float(mpp))
    rng = np.random.default_rng(seed)
    appearance = appearance or AerialAppearance.random(rng)
    image, _ = _render_region(world, grid, appearance, rng)
    return image, grid


# ------------------------------------------------------------------------------ ground
@dataclass
class GroundRender:
    image: np.ndarray  # (H, W, 3) uint8
    classes: np.ndarray  # (H, W) uint8 GroundClass
    points_map: np.ndarray  # (H, W, 3) float32, NaN where nothing was hit (sky)
    depth: np.ndarray  # (H, W) float32 distance from the lens, inf for sky
    aerial_visible: np.ndarray  # (H, W) bool: the nadir view sees this surface point
    pose: np.ndarray  # (3,) x, y, yaw of base_link in map
    camera: MountedCamera


def _world_layers(world: World) -> dict[str, np.ndarray]:
    """Per-world arrays the caster needs, computed once and cached on the world."""
    cached = getattr(world, "_render_layers", None)
    if cached is not None:
        return cached
    tree = world.classes == WorldClass.TREE
    no_tree_height = np.where(tree, world.ground_height, world.height).astype(np.float32)
    no_tree_classes = np.where(tree, world.ground_classes, world.classes).astype(np.uint8)
    no_tree_albedo = np.where(tree[..., None], world.ground_albedo, world.albedo)
    gy, gx = np.gradient(world.height)
    layers = {"h_all": world.height, "h_nt": no_tree_height, "c_all": world.classes, "c_nt": no_tree_classes,
              "a_all": world.albedo, "a_nt": no_tree_albedo, "gx": gx.astype(np.float32), "gy": gy.astype(np.float32)}
    object.__setattr__(world, "_render_layers", layers)
    return layers


def _cast_level_panorama(world: World, cam: np.ndarray, heading0: float, width: int, height: int,
                         columns: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cast a level equirectangular panorama from `cam` (map xyz) whose centre column looks along
    `heading0` (radians CCW from east). Returns per-pixel distance, class, side/top flag and the
    world cell of the hit (for colours)."""
    layers = _world_layers(world)
    res = world.res_m
    cols = np.arange(width) if columns is None else columns
    az_cw = (cols - width / 2) / width * 2 * math.pi
    theta = heading0 - az_cw  # map angle of each column
    steps = np.arange(1, int(MAX_RANGE_M / res) + 1) * res
    sx = cam[0] + np.cos(theta)[:, None] * steps[None]
    sy = cam[1] + np.sin(theta)[:, None] * steps[None]
    r, c, inside = world.cell_index(sx, sy)
    rows_e = (height / 2 - np.arange(height)) / height * math.pi  # elevation of each row
    out_d = np.full((height, len(cols)), np.inf, np.float32)
    out_side = np.zeros((height, len(cols)), bool)
    out_r = np.zeros((height, len(cols)), np.int64)
    out_c = np.zeros((height, len(cols)), np.int64)
    out_nt = np.zeros((height, len(cols)), bool)
    for tag, hkey, row_sel in (("nt", "h_nt", rows_e <= 0), ("all", "h_all", rows_e > 0)):
        if not row_sel.any():
            continue
        tops = np.where(inside, layers[hkey][r, c], 0.0)
        elev = np.arctan2(tops - cam[2], steps[None])
        running = np.maximum.accumulate(elev, axis=1)
        e_rows = rows_e[row_sel]
        row_idx = np.flatnonzero(row_sel)
        # One searchsorted for all columns: each column's running maximum lies in [-pi/2, pi/2],
        # so shifting column j by 4j makes the concatenation sorted without mixing columns.
        n_steps = running.shape[1]
        shift = 4.0 * np.arange(len(cols))[:, None]
        flat_k = np.searchsorted((running + shift).ravel(), (e_rows[None, :] + shift).ravel(), side="left")
        k = (flat_k.reshape(len(cols), -1) - np.arange(len(cols))[:, None] * n_steps).T
        hit = k < len(steps)
        kk = np.minimum(k, len(steps) - 1)
        jj = np.broadcast_to(np.arange(len(cols))[None], kk.shape)
        top_k = tops[jj, kk]
        prev_top = tops[jj, np.maximum(kk - 1, 0)]
        e_col = e_rows[:, None]
        tan_e = np.tan(e_col)
        with np.errstate(divide="ignore", invalid="ignore"):
            d_top = (top_k - cam[2]) / tan_e
        # Flat-top crossing between steps: the exact plane hit.
        top_hit = hit & (e_col < 0) & (top_k < cam[2]) & (np.abs(top_k - prev_top) < 0.05) & (d_top <= steps[kk] + 1e-6)
        d = np.where(top_hit, d_top, steps[kk]) / np.cos(e_col)
        out_d[row_idx] = np.where(hit, d, np.inf)
        out_side[row_idx] = hit & ~top_hit
        out_r[row_idx] = r[jj, kk]
        out_c[row_idx] = c[jj, kk]
        out_nt[row_idx] = tag == "nt"
    return {"dist": out_d, "side": out_side, "r": out_r, "c": out_c, "nt": out_nt, "theta": theta, "elev": rows_e}


def _shade(world: World, hits: dict[str, np.ndarray], points: np.ndarray, rays: np.ndarray,
           appearance: GroundAppearance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Colours and ground classes for hit records (any shape S): returns (S, 3) float and (S,) uint8."""
    layers = _world_layers(world)
    side, nt, r, c = hits["side"], hits["nt"], hits["r"], hits["c"]
    finite = np.isfinite(points[..., 0])
    pr, pc, inside = world.cell_index(np.nan_to_num(points[..., 0]), np.nan_to_num(points[..., 1]))
    # Top hits take the surface at the hit point; side hits take the column that was met.
    rr, cc = np.where(side, r, pr), np.where(side, c, pc)
    wcls = np.where(nt, layers["c_nt"][rr, cc], layers["c_all"][rr, cc])
    albedo = np.where(nt[..., None], layers["a_nt"][rr, cc], layers["a_all"][rr, cc]).astype(np.float32)
    gclass = np.full(side.shape, GroundClass.GROUND, np.uint8)
    gclass[(wcls == WorldClass.BUILDING) & ~side] = GroundClass.ROOF
    gclass[(wcls == WorldClass.BUILDING) & side] = GroundClass.FACADE
    gclass[wcls == WorldClass.POLE] = GroundClass.FACADE
    gclass[wcls == WorldClass.TREE] = GroundClass.VEGETATION
    gclass[wcls == WorldClass.VEHICLE] = GroundClass.VEHICLE
    gclass[~finite] = GroundClass.SKY
    sun = _sun_vector(appearance.sun_azimuth_deg, appearance.sun_elevation_deg)
    color = albedo.copy()
    facade = gclass == GroundClass.FACADE
    if facade.any():
        bid = world.building_id[rr[facade], cc[facade]]
        base = np.where(bid[:, None] >= 0, world.facade_colors[np.maximum(bid, 0)], albedo[facade]).astype(np.float32)
        z = points[facade][:, 2]
        along = points[facade][:, 0] + points[facade][:, 1]
        window = ((z % 3.2) > 1.0) & ((z % 3.2) < 2.4) & ((along % 2.6) > 0.7) & ((along % 2.6) < 1.9) & (z > 0.8)
        base[window] = base[window] * 0.35 + np.array([40, 55, 75], np.float32) * 0.65
        color[facade] = base
    # Lambert shading: normals of top hits are up, of side hits horizontal (from the height gradient).
    gx, gy = layers["gx"][rr, cc], layers["gy"][rr, cc]
    n_side = np.stack([gx, -gy, np.zeros_like(gx)], -1)  # gradient points uphill: the face looks the other way
    n_side = -n_side / (np.linalg.norm(n_side, axis=-1, keepdims=True) + 1e-6)
    fallback = -rays * np.array([1, 1, 0])
    fallback = fallback / (np.linalg.norm(fallback, axis=-1, keepdims=True) + 1e-6)
    n_side = np.where((np.abs(gx) + np.abs(gy))[..., None] > 1e-3, n_side, fallback)
    normal = np.where(side[..., None], n_side, np.array([0.0, 0.0, 1.0]))
    lambert = np.clip(normal @ sun, 0, 1)
    light = 0.55 + 0.6 * lambert
    color *= light[..., None]
    veg = gclass == GroundClass.VEGETATION
    color[veg] *= (0.75 + 0.3 * rng.random(veg.sum()))[:, None]
    veh = (gclass == GroundClass.VEHICLE) & side
    color[veh] *= np.where(points[veh][:, 2:3] < 0.5, 0.35, 0.9)
    # Sky and haze.
    elev = np.arcsin(np.clip(rays[..., 2], -1, 1))
    sky = np.stack([90 + 110 * (1 - elev.clip(0, 1)), 140 + 80 * (1 - elev.clip(0, 1)), 205 + 30 * (1 - elev.clip(0, 1))], -1)
    color = np.where(finite[..., None], color, sky)
    return color, gclass


def render_ground(world: World, pose: SE2 | np.ndarray, mounted: MountedCamera,
                  appearance: GroundAppearance | None = None, rng: np.random.Generator | None = None) -> GroundRender:
    """Render the camera `mounted` on base_link at `pose` (x, y, yaw in map) with ground truth."""
    rng = rng or np.random.default_rng(0)
    appearance = appearance or GroundAppearance.random(rng)
    pose_arr = pose.data.detach().cpu().numpy().astype(np.float64) if isinstance(pose, SE2) else np.asarray(pose, np.float64)
    if pose_arr.shape != (3,) or not np.isfinite(pose_arr).all():
        raise ValueError(f"pose: expected a finite (x, y, yaw), got {pose_arr}")
    cam = mounted.camera
    base_from_cam = mounted.base_from_camera
    rot_b = base_from_cam.rotation.double().numpy()
    t_b = base_from_cam.translation.double().numpy()
    cy_, sy_ = math.cos(pose_arr[2]), math.sin(pose_arr[2])
    r_map_base = np.array([[cy_, -sy_, 0], [sy_, cy_, 0], [0, 0, 1]])
    ground_z = float(world.ground_height[world.cell_index(pose_arr[0], pose_arr[1])[:2]])
    cam_xyz = np.array([pose_arr[0], pose_arr[1], ground_z]) + r_map_base @ t_b
    h, w = cam.height, cam.width
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = torch.from_numpy(np.stack([u, v], -1))
    rays_cam = cam.unproject(pix).numpy()
    rays_map = rays_cam @ (r_map_base @ rot_b).T
    rays_map /= np.linalg.norm(rays_map, axis=-1, keepdims=True)
    level_pano = isinstance(cam, PanoramaCamera) and np.allclose(rot_b, np.eye(3), atol=1e-9)
    if level_pano:
        hits = _cast_level_panorama(world, cam_xyz, pose_arr[2], w, h)
    else:
        # Any other camera: cast a fine level panorama over the azimuths it needs and take each
        # pixel's nearest panorama sample (distance and surface), keeping the pixel's exact ray.
        ref_w, ref_h = 2048, 1024
        theta = np.arctan2(rays_map[..., 1], rays_map[..., 0])
        elev = np.arcsin(np.clip(rays_map[..., 2], -1, 1))
        az_cw = np.mod(pose_arr[2] - theta + math.pi, 2 * math.pi) - math.pi
        ref_u = np.mod(np.rint(ref_w / 2 + az_cw / (2 * math.pi) * ref_w).astype(np.int64), ref_w)
        ref_v = np.clip(np.rint(ref_h / 2 - elev / math.pi * ref_h).astype(np.int64), 0, ref_h - 1)
        needed = np.unique(ref_u)
        ref = _cast_level_panorama(world, cam_xyz, pose_arr[2], ref_w, ref_h, columns=needed)
        col_of = np.zeros(ref_w, np.int64)
        col_of[needed] = np.arange(len(needed))
        j = col_of[ref_u]
        hits = {k: ref[k][ref_v, j] for k in ("dist", "side", "r", "c", "nt")}
    dist = hits["dist"]
    finite = np.isfinite(dist)
    points = np.where(finite[..., None], cam_xyz + rays_map * np.where(finite, dist, 0)[..., None], np.nan)
    color, gclass = _shade(world, hits, points, rays_map, appearance, rng)
    # Aerial visibility: a top-surface hit whose surface is what the nadir view sees at that point.
    pr, pc, inside = world.cell_index(np.nan_to_num(points[..., 0]), np.nan_to_num(points[..., 1]))
    top_here = world.height[pr, pc]
    visible = finite & inside & ~hits["side"] & (np.abs(np.nan_to_num(points[..., 2]) - top_here) < SURFACE_TOL_M)
    if world.vehicle_mask_moving is not None:
        visible &= ~world.vehicle_mask_moving[pr, pc]
    haze = 1.0 - np.exp(-np.where(finite, dist, 1e9) / appearance.haze_m)
    color = color * (1 - haze[..., None]) + np.array([200, 210, 225], np.float32) * haze[..., None]
    color = color * appearance.exposure * np.array(appearance.white_balance)
    color += rng.normal(0, appearance.noise_std, color.shape)
    image = np.clip(color, 0, 255).astype(np.uint8)
    depth = np.where(finite, dist, np.inf).astype(np.float32)
    return GroundRender(image, gclass, points.astype(np.float32), depth, visible, pose_arr, mounted)


def aerial_correspondences(ground: GroundRender, patch: AerialPatch) -> tuple[np.ndarray, np.ndarray]:
    """Aerial pixel (H, W, 2) of each ground pixel's 3D point and whether the aerial patch sees it."""
    xy = torch.from_numpy(np.nan_to_num(ground.points_map[..., :2]).astype(np.float64))
    uv = patch.map_to_pixel(xy).numpy()
    inside = patch.grid.contains_pixel(torch.from_numpy(uv)).numpy()
    return uv.astype(np.float32), ground.aerial_visible & inside


def surface_height_grid(world: World, pose: SE2 | np.ndarray, grid: MetricGrid) -> np.ndarray:
    """True top-surface height (metres above ground) at the cells of `grid`, a grid expressed in the
    planar frame of `pose` (e.g. a BEV grid around base_link)."""
    pose_arr = pose.data.detach().cpu().numpy() if isinstance(pose, SE2) else np.asarray(pose, dtype=np.float64)
    centres = grid.cell_centres(torch.float64).numpy()
    c, s = math.cos(pose_arr[2]), math.sin(pose_arr[2])
    x = pose_arr[0] + c * centres[..., 0] - s * centres[..., 1]
    y = pose_arr[1] + s * centres[..., 0] + c * centres[..., 1]
    return world.height_at(np.stack([x, y], -1)).astype(np.float32)
