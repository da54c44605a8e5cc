import json

import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.data.synth import UNSEEN_STYLES
from cvfm_ros.data.synth import dataset as ds


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "set"
    ds.write_dataset(root, 8, seed=1, styles=["suburb"], ground_size=(128, 64), aerial_size=64, mpp=0.4,
                     correspondences=256, world_size_m=112.0, progress=False)
    return root


def test_roundtrip_and_splits(written):
    index = json.loads((written / "index.json").read_text())
    ids = [i for split in index["splits"].values() for i in split]
    assert len(ids) == len(set(ids)) == 8
    cross = ds.CVFMDataset(written, "test_cross")
    item = cross[0]
    assert item["ground"].shape == (3, 64, 128) and item["aerial"].shape == (3, 64, 64)
    assert item["ground_uv"].shape == (256, 2) and item["visible"].dtype.is_floating_point is False
    meta = json.loads((written / "pairs" / cross.ids[0] / "meta.json").read_text())
    assert meta["style"] in UNSEEN_STYLES
    train = ds.CVFMDataset(written, "train")
    seeds_train = {json.loads((written / "pairs" / i / "meta.json").read_text())["world_seed"] for i in train.ids}
    seeds_same = {json.loads((written / "pairs" / i / "meta.json").read_text())["world_seed"]
                  for i in ds.CVFMDataset(written, "test_same").ids}
    assert seeds_train.isdisjoint(seeds_same)  # same-area tests: unseen places


def test_corruption_and_missing_split(written, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(written, copy)
    reader = ds.CVFMDataset(copy, "train")
    target = copy / "pairs" / reader.ids[0] / "corr.npz"
    target.write_bytes(target.read_bytes()[:-20])
    with pytest.raises(ValueError, match="corr.npz: checksum mismatch"):
        reader[0]
    with pytest.raises(ValueError, match="split: 'test'"):
        ds.CVFMDataset(copy, "test")


def test_interrupted_write_leaves_nothing_readable(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ds.make_pair

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return original(*a, **k)

    monkeypatch.setattr(ds, "make_pair", failing)
    with pytest.raises(RuntimeError):
        ds.write_dataset(tmp_path / "cut", 8, ground_size=(64, 32), aerial_size=32, correspondences=16,
                         world_size_m=96.0, progress=False)
    assert not (tmp_path / "cut" / "index.json").exists()
    with pytest.raises(ValueError, match="index.json: not found"):
        ds.CVFMDataset(tmp_path / "cut", "train")


def test_cli_bad_arguments(tmp_path):
    assert main(["synth", "pairs", "--out", str(tmp_path / "a"), "--count", "2"]) == 2
    assert main(["synth", "pairs", "--out", str(tmp_path / "b"), "--count", "8", "--styles", "atlantis"]) == 2
