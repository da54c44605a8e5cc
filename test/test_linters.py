"""Linters, with the configuration that states the code's style (setup.cfg [flake8]): pyflakes
and pycodestyle over the package, tests, benchmarks and launch file; package.xml well formed
(format 3, the fields colcon and rosdep read); a docstring on every module (pep257's first rule)."""
import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_flake8():
    pytest.importorskip("flake8", reason="flake8 is installed by `make` (requirements.txt)")
    run = subprocess.run([sys.executable, "-m", "flake8", "cvfm_ros", "test", "benchmarks", "launch"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_flake8_sees_a_violation(tmp_path):
    """The configuration is read and still reports what it should (else the test could not fail)."""
    pytest.importorskip("flake8")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx = 1\n" + "y = '" + "a" * 140 + "'\n")
    run = subprocess.run([sys.executable, "-m", "flake8", "--config", str(ROOT / "setup.cfg"), str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert "F401" in run.stdout and "E501" in run.stdout


def test_package_xml():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    for field in ("name", "version", "description", "maintainer", "license"):
        assert (root.findtext(field) or "").strip(), field
    assert root.findtext("name") == "cvfm_ros"
    assert root.find("export/build_type").text == "ament_python"


def test_every_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "cvfm_ros").rglob("*.py"))
               if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, missing
