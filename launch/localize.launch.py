"""Launch the cvfm_ros localizer, optionally with a robot_localization EKF.

    ros2 launch cvfm_ros localize.launch.py tiles:=/data/tiles datum:=47.6062,-122.3321,0 \
        image_topic:=/camera/image_raw odom_topic:=/odom with_ekf:=true

With `with_ekf:=true` robot_localization's ekf_node (config/ekf.yaml) owns map -> odom and the
localizer publishes its TF as a leaf frame only; without it the localizer publishes map -> odom.
If either node exits, the launch shuts the other down (no orphaned localizer); `with_ekf:=true`
without robot_localization installed fails before anything starts.
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, GroupAction, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

SHARE = get_package_share_directory("cvfm_ros")

ARGUMENTS = [
    ("params_file", os.path.join(SHARE, "config", "localize.yaml"), "node parameters (ROS 2 YAML)"),
    ("use_sim_time", "false", "use /clock (bag replay with `ros2 bag play --clock`)"),
    ("namespace", "", "namespace of the nodes (params_file is keyed /**/cvfm_localizer, so it still applies)"),
    ("image_topic", "/camera/image_raw", "camera image base topic (sensor_msgs/Image; <topic>/compressed with "
                                         "use_compressed)"),
    ("use_compressed", "", "true: subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage); "
                           "empty keeps params_file's"),
    ("camera_info_topic", "/camera/camera_info", "sensor_msgs/CameraInfo for pinhole cameras"),
    ("camera_model", "", "panorama | pinhole; empty keeps params_file's"),
    ("camera_height", "", "camera height above the ground under base_link, metres; empty keeps params_file's"),
    ("camera_frame", "", "camera TF frame (extrinsics from TF base_link -> camera_frame); empty keeps params_file's"),
    ("camera_extrinsics", "", "'x,y,roll,pitch,yaw' (metres, degrees) of the camera in base_link, used without "
                              "TF; empty keeps params_file's"),
    ("camera_rig", "", "a camera rig: comma-separated camera names (e.g. front,left,rear,right); camera NAME's "
                       "image and camera_info come from <rig_topic_prefix>/NAME/image_raw and .../camera_info "
                       "(image_topic and camera_info_topic are then unused); empty keeps params_file's"),
    ("rig_topic_prefix", "/cameras", "topic prefix of the rig's cameras"),
    ("odom_topic", "/odom", "wheel/visual odometry (nav_msgs/Odometry)"),
    ("tiles", "", "satellite tile cache (XYZ folder or .mbtiles); empty keeps params_file's"),
    ("datum", "", "map datum 'lat,lon[,alt]'; empty keeps params_file's"),
    ("backend", "", "auto | torch | onnxruntime | tensorrt; empty keeps params_file's"),
    ("with_ekf", "false", "also start robot_localization's ekf_node with config/ekf.yaml"),
]


def _floats(name: str, text: str, counts: tuple) -> list:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise ValueError(f"launch argument {name}: expected {' or '.join(map(str, counts))} comma-separated "
                         f"numbers, got {text!r}")
    return values


def _boolean(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")
    return text.lower() == "true"


def _overrides(context):
    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    with_ekf = _boolean("with_ekf", get("with_ekf"))
    if with_ekf:
        try:
            get_package_share_directory("robot_localization")
        except PackageNotFoundError:
            raise RuntimeError("launch argument with_ekf:=true needs robot_localization, which is not installed "
                               "(apt install ros-$ROS_DISTRO-robot-localization), or launch with with_ekf:=false")
    params = {"autostart": True, "use_sim_time": _boolean("use_sim_time", get("use_sim_time"))}
    if get("tiles"):
        params["tiles.path"] = get("tiles")
    if get("datum"):
        parts = _floats("datum", get("datum"), (2, 3))
        params["datum.latitude"], params["datum.longitude"] = parts[0], parts[1]
        params["datum.altitude"] = parts[2] if len(parts) == 3 else 0.0
    if get("backend"):
        params["matcher.backend"] = get("backend")
    if get("use_compressed"):
        params["use_compressed"] = _boolean("use_compressed", get("use_compressed"))
    if get("camera_model"):
        params["camera.model"] = get("camera_model")
    if get("camera_height"):
        params["camera.height_m"] = _floats("camera_height", get("camera_height"), (1,))[0]
    if get("camera_frame"):
        params["camera.frame_id"] = get("camera_frame")
    if get("camera_extrinsics"):
        x, y, roll, pitch, yaw = _floats("camera_extrinsics", get("camera_extrinsics"), (5,))
        params.update({"camera.x_m": x, "camera.y_m": y, "camera.roll_deg": roll, "camera.pitch_deg": pitch,
                       "camera.yaw_deg": yaw})
    # Never have two publishers of map -> odom.
    params["tf_mode"] = "leaf" if with_ekf else "map_to_odom"
    image = get("image_topic")
    remappings = [("image", image), ("image/compressed", f"{image}/compressed"),
                  ("camera_info", get("camera_info_topic")), ("odom", get("odom_topic"))]
    if get("camera_rig"):
        names = [n.strip() for n in get("camera_rig").split(",")]
        if not all(n.isidentifier() for n in names) or len(set(names)) != len(names):
            raise ValueError(f"launch argument camera_rig: expected distinct camera names separated by commas, "
                             f"got {get('camera_rig')!r}")
        params["camera.rig"], params["camera.model"] = ",".join(names), "pinhole"
        prefix = get("rig_topic_prefix").rstrip("/")
        for n in names:
            remappings += [(f"{n}/image", f"{prefix}/{n}/image_raw"),
                           (f"{n}/image/compressed", f"{prefix}/{n}/image_raw/compressed"),
                           (f"{n}/camera_info", f"{prefix}/{n}/camera_info")]
    localizer = Node(
        package="cvfm_ros", executable="localizer_node", name="cvfm_localizer", output="screen",
        parameters=[get("params_file"), params], remappings=remappings,
    )
    nodes = [("cvfm_localizer", localizer)]
    if with_ekf:
        nodes.append(("ekf_filter_node_map", Node(
            package="robot_localization", executable="ekf_node", name="ekf_filter_node_map", output="screen",
            parameters=[os.path.join(SHARE, "config", "ekf.yaml"), {"use_sim_time": params["use_sim_time"]}],
            remappings=[("odometry/filtered", "odometry/filtered_map")],
        )))
    # One node without the other is a broken setup: when either exits, shut the launch down.
    stop_all = [RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[EmitEvent(event=Shutdown(reason=f"{name} exited"))]))
        for name, node in nodes]
    return [GroupAction([PushRosNamespace(get("namespace")), *(node for _, node in nodes)]), *stop_all]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc) for name, default, desc in ARGUMENTS]
        + [OpaqueFunction(function=_overrides)]
    )
