"""ament_python / pip build of cvfm_ros.

The same file serves `colcon build` on a ROS 2 machine (launch, config and msg files land in
share/cvfm_ros, executables in lib/cvfm_ros) and `pip install -e .` in the project's venv.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "cvfm_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="cvfm_ros maintainers",
    maintainer_email="maintainers@cvfm-ros.dev",
    description="Cross-view fine-grained matching localizer for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "cvfm-ros = cvfm_ros.cli.main:main",
            "localizer_node = cvfm_ros.ros.node:main",
        ],
    },
)
