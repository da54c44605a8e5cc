"""VIGOR loader against tiny fixtures in the release's exact layout, and the real pair in
../shared/data/real/vigor_sample."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cvfm_ros.data.real.vigor import (
    VIGOR_MPP,
    VIGOR_ORIGINAL_LABEL_MPP,
    VigorDataset,
    label_files,
    load_vigor_pair,
    parse_aerial_name,
    parse_label_line,
    parse_panorama_name,
)
from cvfm_ros.geometry import SE2, SE3, PanoramaCamera

# A real line of SliceMatch's corrected Seattle labels (splits__corrected, same-area test) and
# its file names, whose GPS positions let us check the sign conventions independently.
REAL_LINE = ("EPdy_wwpT03WDToUUDkHnQ,47.582113,-122.314680,.jpg "
             "satellite_47.58225436149519_-122.31462478843227.png 156.0 40.0 "
             "satellite_47.58192628904255_-122.31462478843227.png -205.0 43.0 "
             "satellite_47.58225436149519_-122.31511123266363.png 153.0 -323.0 "
             "satellite_47.58192628904255_-122.31511123266363.png -209.0 -320.0")


def _pano(w: int = 64, h: int = 32) -> np.ndarray:
    """Eight colour blocks around the horizon: block k covers azimuths [k, k+1) * 45 deg from
    the left edge (which looks south in a north-aligned VIGOR panorama)."""
    img = np.zeros((h, w, 3), np.uint8)
    for k in range(8):
        img[:, k * w // 8:(k + 1) * w // 8] = ((k * 37) % 256, (k * 91) % 256, (255 - k * 29) % 256)
    return img


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = ".png" if path.suffix == ".png" else ".jpg"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    path.write_bytes(buf.tobytes())


@pytest.fixture
def vigor_root(tmp_path) -> Path:
    """Two lines per city, for the corrected and the original labels."""
    root = tmp_path / "VIGOR"
    for ci, city in enumerate(("NewYork", "Seattle", "SanFrancisco", "Chicago")):
        lines = []
        for i in range(2):
            pano = f"p{ci}{i}xyz,{40 + ci}.{i}1,-{70 + ci}.{i}2,.jpg"
            _write(root / city / "panorama" / pano, _pano())
            aerials = [f"satellite_{40 + ci}.{i}{k}_-{70 + ci}.{i}{k}.png" for k in range(4)]
            for k, name in enumerate(aerials):
                _write(root / city / "satellite" / name, np.full((64, 64, 3), 40 * k, np.uint8))
            offsets = [(10.0 * (i + 1), -20.0), (-300.0, 5.0), (100.0, 330.0), (-310.0, 330.0)]
            lines.append(" ".join([pano] + [f"{a} {r} {c}" for a, (r, c) in zip(aerials, offsets)]))
        text = "\n".join(lines) + "\n"
        for folder, suffix in (("splits__corrected", "__corrected"), ("splits", "")):
            d = root / folder / city
            d.mkdir(parents=True, exist_ok=True)
            for stem in ("same_area_balanced_train", "same_area_balanced_test", "pano_label_balanced"):
                (d / f"{stem}{suffix}.txt").write_text(text)
            (d / "satellite_list.txt").write_text("\n".join(sorted(p.name for p in (root / city / "satellite").iterdir())))
    return root


def test_label_parsing_and_sign_convention():
    label = parse_label_line(REAL_LINE, "Seattle")
    assert label.panorama.startswith("EPdy") and len(label.aerials) == 4
    assert label.offsets_px[0] == (156.0, 40.0)
    # Offsets -> metres in our convention, checked against the GPS in the file names.
    from pyproj import Geod

    pano_lat, pano_lon = parse_panorama_name(label.panorama)
    sat_lat, sat_lon = parse_aerial_name(label.aerials[0])
    az, _, dist = Geod(ellps="WGS84").inv(sat_lon, sat_lat, pano_lon, pano_lat)  # aerial centre -> panorama
    east, north = dist * math.sin(math.radians(az)), dist * math.cos(math.radians(az))
    d_row, d_col = label.offsets_px[0]
    mpp = VIGOR_MPP["Seattle"]
    assert -d_col * mpp == pytest.approx(east, abs=0.2)
    assert -d_row * mpp == pytest.approx(north, abs=0.2)
    with pytest.raises(ValueError, match="13 columns"):
        parse_label_line("a b 1 2", "Seattle", "f.txt:3")
    with pytest.raises(ValueError, match="f.txt:4"):
        parse_label_line(REAL_LINE.replace("156.0", "north"), "Seattle", "f.txt:4")
    with pytest.raises(ValueError, match="panorama name"):
        parse_panorama_name("nolatlon.jpg")


def test_splits_follow_the_protocols(vigor_root):
    same = [c for c, _ in label_files(vigor_root, "same_area", "test")]
    assert same == ["NewYork", "Seattle", "SanFrancisco", "Chicago"]
    assert [c for c, _ in label_files(vigor_root, "cross_area", "train")] == ["NewYork", "Seattle"]
    cross_test = label_files(vigor_root, "cross_area", "test")
    assert [c for c, _ in cross_test] == ["SanFrancisco", "Chicago"]
    assert cross_test[0][1].name == "pano_label_balanced__corrected.txt"
    assert label_files(vigor_root, "same_area", "train", "original")[0][1].parent.parent.name == "splits"
    (vigor_root / "splits__corrected" / "Chicago" / "same_area_balanced_test__corrected.txt").unlink()
    (vigor_root / "splits__corrected" / "Chicago" / "same_area_balanced_test.txt").write_text("")
    assert label_files(vigor_root, "same_area", "test")[-1][1].name == "same_area_balanced_test.txt"
    (vigor_root / "splits__corrected" / "Chicago" / "same_area_balanced_test.txt").unlink()
    with pytest.raises(ValueError, match="same_area_balanced_test"):
        label_files(vigor_root, "same_area", "test")
    with pytest.raises(ValueError, match="cities"):
        label_files(vigor_root, cities=["Paris"])
    with pytest.raises(ValueError, match="split"):
        label_files(vigor_root, "mixed")


def test_dataset_samples(vigor_root):
    ds = VigorDataset(vigor_root, "cross_area", "test")
    assert len(ds) == 4
    s = ds[0]
    assert s.city == "SanFrancisco"
    assert s.panorama.shape == (32, 64, 3) and s.aerial.shape == (64, 64, 3)
    # A 64-px aerial covers the same ground as the 640-px original: ten times the resolution.
    assert s.mpp == pytest.approx(VIGOR_MPP["SanFrancisco"] * 10)
    d_row, d_col = 10.0, -20.0
    mpp = VIGOR_MPP["SanFrancisco"]
    torch.testing.assert_close(s.pose.data, torch.tensor([-d_col * mpp, -d_row * mpp, math.pi / 2], dtype=torch.float64))
    # The pixel is where VIGOR's own plots put it: (W/2 - d_col, H/2 + d_row) in corner
    # coordinates, scaled to the stored size, minus half a pixel for OpenCV centres.
    assert s.pixel == pytest.approx((32 - d_col / 10 - 0.5, 32 + d_row / 10 - 0.5))
    torch.testing.assert_close(s.patch.pixel_to_map(torch.tensor(s.pixel, dtype=torch.float64)), s.pose.data[:2])
    assert s.patch.image.shape == (3, 64, 64) and s.patch.image.dtype == torch.uint8
    semi = ds.sample(1, aerial_index=2)
    assert semi.pose.x.item() == pytest.approx(-330.0 * mpp) and semi.aerial[0, 0, 0] == 80
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(ValueError, match="aerial_index"):
        ds.sample(0, aerial_index=4)


def test_original_labels_are_rescaled(vigor_root):
    corrected = VigorDataset(vigor_root, "same_area", "test", cities=["Seattle"])
    original = VigorDataset(vigor_root, "same_area", "test", labels="original", cities=["Seattle"])
    # Same pixel offsets in both fixtures: the original ones mean 0.114 m/px.
    ratio = original[0].pose.x.item() / corrected[0].pose.x.item()
    assert ratio == pytest.approx(VIGOR_ORIGINAL_LABEL_MPP / VIGOR_MPP["Seattle"])
    assert original[0].pose.x.item() == pytest.approx(20.0 * VIGOR_ORIGINAL_LABEL_MPP)


@pytest.mark.parametrize("heading", [0.0, 90.0, 180.0, 270.0, 45.0])
def test_heading_rolls_the_panorama(vigor_root, heading):
    ds = VigorDataset(vigor_root, "same_area", "test", cities=["Seattle"])
    s = ds.sample(0, heading_deg=heading)
    north_up = ds.sample(0)
    w = s.panorama.shape[1]
    # The centre column now shows what the stored panorama shows at azimuth `heading` from north.
    src_col = int(round(w / 2 + heading / 360 * w)) % w
    np.testing.assert_array_equal(s.panorama[:, w // 2], north_up.panorama[:, src_col])
    assert s.heading_deg == pytest.approx(heading)
    want = math.pi / 2 - math.radians(heading)  # compass heading -> yaw CCW from east
    assert abs(math.remainder(s.pose.yaw.item() - want, 2 * math.pi)) < 1e-9
    assert -math.pi < s.pose.yaw.item() <= math.pi
    # Headings given per panorama in the constructor apply too.
    name = ds.labels[0].panorama
    dataset = VigorDataset(vigor_root, "same_area", "test", cities=["Seattle"], headings={name: heading})
    assert dataset[0].heading_deg == pytest.approx(heading)


def test_bad_files(vigor_root, tmp_path):
    pano = next((vigor_root / "Seattle" / "panorama").iterdir())
    aerial = next((vigor_root / "Seattle" / "satellite").iterdir())
    with pytest.raises(ValueError, match="not found"):
        load_vigor_pair(tmp_path / "missing.jpg", aerial, (0.0, 0.0), "Seattle")
    bad = tmp_path / "square.jpg"
    _write(bad, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="2:1"):
        load_vigor_pair(bad, aerial, (0.0, 0.0), "Seattle")
    with pytest.raises(ValueError, match="city"):
        load_vigor_pair(pano, aerial, (0.0, 0.0), "Paris")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_vigor_pair(pano, junk, (0.0, 0.0), "Seattle")


def test_real_vigor_pair(shared_dir, tmp_path):
    """The real pair, wired into the VIGOR layout with a one-line label (it ships none)."""
    sample_dir = shared_dir / "data" / "real" / "vigor_sample"
    if not (sample_dir / "pano.png").is_file():
        pytest.skip("no real VIGOR sample in ../shared")
    root = tmp_path / "VIGOR"
    pano_name = "realpano,47.600000,-122.300000,.jpg"
    aerial_name = "satellite_47.6001_-122.3002.png"
    for sub, name, src in (("panorama", pano_name, "pano.png"), ("satellite", aerial_name, "sat.png")):
        (root / "Seattle" / sub).mkdir(parents=True)
        (root / "Seattle" / sub / name).symlink_to(sample_dir / src)
    (root / "splits__corrected" / "Seattle").mkdir(parents=True)
    line = f"{pano_name} {aerial_name} 12.0 -7.0" + f" {aerial_name} 0.0 0.0" * 3
    (root / "splits__corrected" / "Seattle" / "same_area_balanced_test__corrected.txt").write_text(line + "\n")
    ds = VigorDataset(root, "same_area", "test", cities=["Seattle"])
    s = ds[0]
    assert s.panorama.shape == (1024, 2048, 3) and s.panorama.dtype == np.uint8
    assert s.aerial.shape == (640, 640, 3)
    assert s.mpp == VIGOR_MPP["Seattle"] == pytest.approx(0.100817)
    assert s.pixel == pytest.approx((319.5 + 7.0, 319.5 + 12.0))
    assert s.pose.x.item() == pytest.approx(7.0 * 0.100817) and s.pose.y.item() == pytest.approx(-12.0 * 0.100817)
    # Camera model: the panorama camera, north-aligned (yaw pi/2), a level mast.
    assert s.camera.camera == PanoramaCamera(2048, 1024)
    assert s.pose.yaw.item() == pytest.approx(math.pi / 2)
    assert s.camera.height_m > 1.0
    # Conventions end to end: a point 10 m north of the camera appears in the centre column, one
    # 10 m east three quarters of the way across, at the horizon row if at camera height.
    base_in_map = SE3.from_se2(SE2(s.pose.data.float()[None]))
    h = s.camera.height_m
    pts_map = torch.tensor([[[s.pose.x.item(), s.pose.y.item() + 10, h], [s.pose.x.item() + 10, s.pose.y.item(), h]]])
    pts_base = base_in_map.inverse().apply(pts_map)[0]
    uv, valid = s.camera.project_base_points(pts_base)
    assert valid.all()
    assert uv[0].tolist() == pytest.approx([1024.0, 512.0], abs=1e-3)
    assert uv[1].tolist() == pytest.approx([1536.0, 512.0], abs=1e-3)
    # The real panorama has bright blue sky at the top and grey asphalt at the bottom: the image
    # is read upright and in RGB order.
    top = s.panorama[:150].reshape(-1, 3).mean(0)
    bottom = s.panorama[-150:].reshape(-1, 3).mean(0)
    assert top.mean() > bottom.mean() + 30
    assert top[2] > top[0] + 10
