"""cvfm_ros: cross-view fine-grained matching localization for ROS 2.

    from cvfm_ros import Localizer
    localizer = Localizer.from_weights()  # the shipped weights, or a path
    result = localizer.localize_pair(ground_rgb, aerial_rgb, aerial_mpp=0.2)
    print(result.status.name, result.pose, result.covariance)

Sub-packages are split by responsibility and layered (README "Layout"). Only `cvfm_ros.ros`
imports rclpy; everything else imports and runs without ROS.
"""

__version__ = "0.1.0"

# The API names load on first use, so `import cvfm_ros` (and the CLI's start) stays cheap.
_API = {
    "Localizer": "cvfm_ros.runtime.localizer",
    "LocalizerConfig": "cvfm_ros.runtime.settings",
    "LocalizationResult": "cvfm_ros.runtime.result",
    "Status": "cvfm_ros.runtime.result",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cvfm_ros' has no attribute {name!r}")
