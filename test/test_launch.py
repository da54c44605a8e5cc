import ast
import importlib.util
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "localize.launch.py"


def test_launch_file_declares_the_documented_arguments():
    tree = ast.parse(LAUNCH.read_text())
    names = {node.elts[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[0], ast.Constant)}
    assert {"params_file", "use_sim_time", "namespace", "image_topic", "camera_info_topic", "odom_topic", "tiles",
            "datum", "backend", "with_ekf"} <= names


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (no PyPI wheel; it comes with a ROS 2 installation)")
def test_launch_description_builds():
    spec = importlib.util.spec_from_file_location("localize_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert len(description.entities) >= 10
