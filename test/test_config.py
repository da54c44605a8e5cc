from dataclasses import dataclass, field

import pytest

from cvfm_ros.config import atomic_write_text, from_dict, load_config, to_dict


@dataclass
class Inner:
    size: int = 3
    scale: float = 1.0


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_from_dict_nested_and_roundtrip():
    cfg = from_dict(Outer, {"name": "y", "inner": {"size": 5, "scale": 2}, "tags": ["a"]})
    assert cfg.inner.size == 5 and cfg.inner.scale == 2.0 and cfg.tags == ["a"]
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_unknown_and_mistyped_keys_are_named():
    with pytest.raises(ValueError, match=r"config.inner: unknown key\(s\) \['sise'\]"):
        from_dict(Outer, {"inner": {"sise": 5}})
    with pytest.raises(ValueError, match=r"config.inner.size: expected an integer"):
        from_dict(Outer, {"inner": {"size": "five"}})


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    atomic_write_text(path, "matcher:\n  name: z\n  bogus: 1\n")
    with pytest.raises(ValueError, match=r"c.yaml:matcher: unknown key"):
        load_config(Outer, path, section="matcher")
    with pytest.raises(ValueError, match="missing section 'other'"):
        load_config(Outer, path, section="other")
    with pytest.raises(ValueError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_writes_follow_the_umask_like_a_plain_write(tmp_path):
    """A cache or export written atomically is readable by others when the umask allows it."""
    import os
    import stat

    from cvfm_ros.config import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.bin", b"x")
        assert stat.S_IMODE((tmp_path / "shared.bin").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.bin", b"y")
        assert stat.S_IMODE((tmp_path / "private.bin").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private.bin", "shared.bin"]  # no temporary left
