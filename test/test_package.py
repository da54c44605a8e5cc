"""Package metadata and layout: what colcon, rosdep and pip rely on."""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_rosdep_keys():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    for tag in ("name", "version", "description", "maintainer", "license"):
        assert root.find(tag) is not None and root.find(tag).text.strip(), tag
    assert root.find("name").text == "cvfm_ros"
    assert root.find("buildtool_depend").text == "ament_python"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    for key in ("rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "diagnostic_msgs", "visualization_msgs",
                "tf2_ros", "cv_bridge", "launch_ros", "robot_localization"):
        assert key in exec_deps, key
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    # Format 3 orders the dependency tags before <export>.
    tags = [child.tag for child in root]
    assert tags.index("export") == len(tags) - 1


def test_setup_cfg_puts_executables_in_lib_package():
    text = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/cvfm_ros" in text and "install_scripts=$base/lib/cvfm_ros" in text
    assert (REPO / "resource" / "cvfm_ros").is_file()


def test_wheel_installs_share_files_and_entry_points(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("cvfm_ros-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert "share/ament_index/resource_index/packages/cvfm_ros" in data
    assert "share/cvfm_ros/package.xml" in data
    for folder in ("launch", "config", "msg"):
        for f in (REPO / folder).glob("*"):
            if f.suffix in (".py", ".yaml", ".msg"):
                assert f"share/cvfm_ros/{folder}/{f.name}" in data, f
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "cvfm-ros = cvfm_ros.cli.main:main" in entry_points
    assert "localizer_node = cvfm_ros.ros.node:main" in entry_points


def test_only_the_ros_layer_imports_rclpy():
    offenders = []
    for path in (REPO / "cvfm_ros").rglob("*.py"):
        if "ros" in path.relative_to(REPO / "cvfm_ros").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("rclpy", "tf2_ros", "cv_bridge", "launch_ros") for n in names):
                offenders.append(str(path))
    assert not offenders


def test_core_imports_without_ros():
    code = ("import sys, importlib, pkgutil, cvfm_ros\n"
            "for m in pkgutil.walk_packages(cvfm_ros.__path__, 'cvfm_ros.'):\n"
            "    if not m.name.startswith('cvfm_ros.ros'): importlib.import_module(m.name)\n"
            "assert 'rclpy' not in sys.modules, 'rclpy imported outside cvfm_ros.ros'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "cvfm_ros.cli.main", "--help"], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    from cvfm_ros.cli.main import COMMANDS
    for name in COMMANDS:
        assert name in out
    bad = subprocess.run([sys.executable, "-m", "cvfm_ros.cli.main", "no-such-command"], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


def test_the_repository_carries_its_conventions():
    """A clone has the frames/units/pixels document, and the code points to it, not outside."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    doc = (repo / "docs" / "CONVENTIONS.md").read_text()
    for section in ("## Frames", "## Aerial imagery", "## Ground cameras", "## Correspondences and metrics", "## Time"):
        assert section in doc
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    needle = "../shared/" + "CONVENTIONS"  # split so that this test does not find itself
    outside = [p for p in tracked if p.endswith((".py", ".md")) and needle in (repo / p).read_text()]
    assert not outside, outside
