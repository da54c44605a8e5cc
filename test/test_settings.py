from pathlib import Path

import pytest

from cvfm_ros.runtime.settings import NodeSettings, load_node_settings

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_loads_and_matches_defaults():
    settings = load_node_settings(REPO / "config" / "localize.yaml")
    defaults = NodeSettings()
    assert settings.tf_mode == defaults.tf_mode and settings.camera.model == "panorama"
    assert settings.tiles.offline is True
    assert settings.localizer_config().datum.latitude == pytest.approx(47.6062)


def test_bad_config_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cvfm_localizer:\n  ros__parameters:\n    gate:\n      mahalanobis: 3\n")
    with pytest.raises(ValueError, match=r"gate: unknown key\(s\) \['mahalanobis'\]"):
        load_node_settings(path)
    path.write_text("cvfm_localizer:\n  ros__parameters:\n    datum:\n      latitude: 91.0\n")
    with pytest.raises(ValueError, match="datum.latitude"):
        load_node_settings(path)
    path.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ValueError, match="cvfm_localizer: ros__parameters"):
        load_node_settings(path)


def test_camera_extrinsics_from_parameters():
    from cvfm_ros.runtime.settings import CameraSettings

    import torch
    ext = CameraSettings(model="pinhole", height_m=1.5, pitch_deg=10.0).extrinsics()
    forward_optical_axis = ext.rotation @ torch.tensor([0.0, 0.0, 1.0])
    assert forward_optical_axis[0] > 0.9 and forward_optical_axis[2] < 0  # looks forward and a bit down
    assert float(ext.translation[2]) == pytest.approx(1.5)


@pytest.mark.parametrize("key,value,message", [
    ("matcher.kind", "baselin", r"parameter matcher.kind: expected one of \['model', 'baseline'\], got 'baselin'"),
    ("gate.max_std_xy_m", -1.0, r"parameter gate.max_std_xy_m: expected a value in \[0.01, 10000.0\], got -1.0"),
    ("camera.model", "fisheye", r"parameter camera.model: expected one of"),
    ("camera.height_m", float("nan"), r"parameter camera.height_m: expected a value in"),
])
def test_replay_yaml_is_held_to_the_parameter_limits(tmp_path, key, value, message):
    """The YAML that `cvfm-ros replay` reads gets the same range and choice checks as the node's
    parameter descriptors: a typo never silently runs another matcher."""
    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "localize.yaml").read_text())
    section = params["/**/cvfm_localizer"]["ros__parameters"]
    outer, inner = key.split(".")
    section[outer][inner] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=message):
        load_node_settings(path)
