"""Launch the cvfm_ros localizer, optionally with a robot_localization EKF.

    ros2 launch cvfm_ros localize.launch.py tiles:=/data/tiles datum:=47.6062,-122.3321,0 \
        image_topic:=/camera/image_raw odom_topic:=/odom with_ekf:=true

With `with_ekf:=true` robot_localization's ekf_node (config/ekf.yaml) owns map -> odom and the
localizer publishes its TF as a leaf frame only; without it the localizer publishes map -> odom.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace
from launch.actions import GroupAction

SHARE = get_package_share_directory("cvfm_ros")

ARGUMENTS = [
    ("params_file", os.path.join(SHARE, "config", "localize.yaml"), "node parameters (ROS 2 YAML)"),
    ("use_sim_time", "false", "use /clock (bag replay with `ros2 bag play --clock`)"),
    ("namespace", "", "namespace of the nodes"),
    ("image_topic", "/camera/image_raw", "camera image (sensor_msgs/Image or CompressedImage)"),
    ("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo for pinhole cameras"),
    ("odom_topic", "/odom", "wheel/visual odometry (nav_msgs/Odometry)"),
    ("tiles", "", "satellite tile cache (XYZ folder or .mbtiles); empty keeps params_file's"),
    ("datum", "", "map datum 'lat,lon[,alt]'; empty keeps params_file's"),
    ("backend", "", "auto | torch | onnxruntime | tensorrt; empty keeps params_file's"),
    ("with_ekf", "false", "also start robot_localization's ekf_node with config/ekf.yaml"),
]


def _overrides(context):
    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params = {"autostart": True, "use_sim_time": get("use_sim_time").lower() == "true"}
    if get("tiles"):
        params["tiles.path"] = get("tiles")
    if get("datum"):
        parts = [float(p) for p in get("datum").split(",")]
        if len(parts) not in (2, 3):
            raise ValueError(f"datum: expected 'lat,lon[,alt]', got {get('datum')!r}")
        params["datum.latitude"], params["datum.longitude"] = parts[0], parts[1]
        params["datum.altitude"] = parts[2] if len(parts) == 3 else 0.0
    if get("backend"):
        params["matcher.backend"] = get("backend")
    # Never have two publishers of map -> odom.
    params["tf_mode"] = "leaf" if get("with_ekf").lower() == "true" else "map_to_odom"
    localizer = Node(
        package="cvfm_ros", executable="localizer_node", name="cvfm_localizer", output="screen",
        parameters=[get("params_file"), params],
        remappings=[("image", get("image_topic")), ("camera_info", get("camera_info_topic")),
                    ("odom", get("odom_topic"))],
    )
    ekf = Node(
        package="robot_localization", executable="ekf_node", name="ekf_filter_node_map", output="screen",
        parameters=[os.path.join(SHARE, "config", "ekf.yaml"), {"use_sim_time": params["use_sim_time"]}],
        remappings=[("odometry/filtered", "odometry/filtered_map")],
        condition=IfCondition(LaunchConfiguration("with_ekf")),
    )
    return [GroupAction([PushRosNamespace(get("namespace")), localizer, ekf])]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc) for name, default, desc in ARGUMENTS]
        + [OpaqueFunction(function=_overrides)]
    )
