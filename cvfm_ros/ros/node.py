"""The `cvfm_localizer` lifecycle node (executable `localizer_node`).

A thin rclpy layer over `cvfm_ros.runtime.session.LocalizationSession`: it converts messages at
the edges, runs inference on a worker thread (newest frame only), and publishes the pose of
`base_link` in `map` with its covariance, TF, diagnostics and on-demand debug output.

Lifecycle: configure reads and validates parameters, loads the matcher, backend and tile index;
activate starts subscriptions, the worker and diagnostics; deactivate stops them; cleanup frees
the localizer. With `autostart` (default) the node configures and activates itself.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from typing import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, NavSatFix
from visualization_msgs.msg import Marker, MarkerArray

from ..geometry import SE3, CameraRig, MountedCamera, PanoramaCamera, PinholeCamera
from ..geometry.planar import covariance_ellipse, map_from_odom
from ..io import (
    camera_info_to_camera, covariance_from_ros, covariance_to_ros, quaternion_to_yaw_checked, transform_to_se3,
)
from ..runtime.result import LocalizationResult, Status
from ..runtime.rig_sync import RigFrame, RigSynchronizer
from ..runtime.session import LatestSlot, LocalizationSession
from ..runtime.settings import NodeSettings
from .conversions import image_to_rgb, odometry_to_pose, pose_to_quaternion, stamp_to_sec
from .parameters import apply_parameter_changes, declare_settings, read_settings

try:  # tf2_ros comes with a ROS 2 installation, not with the pip wheels.
    import tf2_ros  # type: ignore

    TF2_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    tf2_ros = None
    TF2_AVAILABLE = False


def _default_factory(settings: NodeSettings):
    from ..runtime.localizer import Localizer

    return Localizer(settings.localizer_config())


class LocalizerNode(LifecycleNode):
    def __init__(self, *, localizer_factory: Callable | None = None, **node_kwargs) -> None:
        super().__init__("cvfm_localizer", **node_kwargs)
        declare_settings(self, NodeSettings)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._factory = localizer_factory or _default_factory
        self._lock = threading.Lock()
        self._odometry_arrived = threading.Condition(self._lock)
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._running = False
        self._subs: list = []
        self._pubs: dict = {}
        self._timer = None
        self._camera_info: PinholeCamera | None = None
        self._rig_camera_info: dict[str, PinholeCamera] = {}  # camera name -> its camera_info (rigs)
        self._rig_sync: RigSynchronizer | None = None
        self._internal_errors = 0  # frames whose processing raised (the worker goes on)
        self._last_internal_error = ""
        self._logged_reasons: set[str] = set()
        self.session: LocalizationSession | None = None
        self.settings: NodeSettings | None = None
        self.last_result: LocalizationResult | None = None
        # (image stamp ns, parent, child, (x, y, yaw)): one tuple, so readers on other threads see a consistent set
        self.last_transform: tuple[int, str, str, np.ndarray] | None = None
        self._tf_broadcaster = None
        self._tf_buffer = None
        if self.get_parameter("autostart").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        """Writable parameters (prior.*, gate.*, camera mounting, matcher.yaw_search_step_deg) take
        effect on the next frame; read-only ones are refused by rclpy before this is called.
        Before configure, values are simply read at configure."""
        if self.settings is None:
            return SetParametersResult(successful=True)
        try:
            with self._lock:
                names = apply_parameter_changes(self.settings, {p.name: p.value for p in params})
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.get_logger().info(f"parameters applied: {', '.join(names)}")
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.settings = read_settings(self, NodeSettings)
            self.settings.validate()
            localizer = self._factory(self.settings)
        except (ValueError, FileNotFoundError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.session = LocalizationSession(localizer, self.settings.prior)
        self._seed_from_parameters(0.0)
        self._prepare_backend(localizer)
        self._pubs = {
            "pose": self.create_publisher(PoseWithCovarianceStamped, "~/pose", 10),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
            "markers": self.create_publisher(MarkerArray, "~/debug/markers", 1),
            "debug_image": self.create_publisher(Image, "~/debug/matches", 1),
        }
        if TF2_AVAILABLE and self.settings.tf_mode != "none":
            self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
        if TF2_AVAILABLE and (self.settings.camera.frame_id or self.settings.camera.rig_names()):
            # a rig's extrinsics come from each image's frame_id
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self.get_logger().info(f"configured: backend={getattr(localizer, 'backend_name', '?')}, "
                               f"tf={'on' if self._tf_broadcaster else 'unavailable' if not TF2_AVAILABLE else 'off'}")
        return TransitionCallbackReturn.SUCCESS

    def _prepare_backend(self, localizer) -> None:
        """Choose and warm up the inference backend now (export, engine build, validation take
        seconds), not on the first image. A panorama's model camera is known from the parameters;
        a pinhole camera's waits for camera_info, so its backend is chosen on its first frame."""
        prepare = getattr(localizer, "prepare", None)
        if prepare is None or self.settings.camera.model != "panorama":
            return
        try:
            prepare(MountedCamera(PanoramaCamera(2 * 256, 256), self.settings.camera.extrinsics()))
        except ValueError as exc:  # the first frame tries again and reports BAD_INPUT if it fails too
            self.get_logger().error(f"backend selection failed at configure: {exc}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        s = self.settings
        image_type = CompressedImage if s.use_compressed else Image
        image_topic = "image/compressed" if s.use_compressed else "image"
        names = s.camera.rig_names()
        if names:  # a rig: <name>/image and <name>/camera_info per camera, grouped into frames
            self._rig_sync = RigSynchronizer(names, s.camera.rig_sync_tolerance_s, jump_s=s.prior.time_jump_s)
            cameras = [sub for n in names for sub in (
                self.create_subscription(image_type, f"{n}/{image_topic}", lambda msg, n=n: self._on_rig_image(n, msg),
                                         qos_profile_sensor_data),
                self.create_subscription(CameraInfo, f"{n}/camera_info", lambda msg, n=n: self._on_camera_info(msg, n),
                                         qos_profile_sensor_data))]
        else:
            cameras = [self.create_subscription(image_type, image_topic, self._on_image, qos_profile_sensor_data),
                       self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data)]
        self._subs = [
            *cameras,
            self.create_subscription(Odometry, "odom", self._on_odometry, QoSProfile(depth=50)),
            self.create_subscription(PoseWithCovarianceStamped, "/initialpose", self._on_initial_pose, 10),
            self.create_subscription(NavSatFix, "fix", self._on_navsat, qos_profile_sensor_data),
        ]
        self._running = True
        self._slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, name="cvfm_inference", daemon=True)
        self._worker.start()
        self._timer = self.create_timer(s.diagnostics_period_s, self._publish_diagnostics)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self.session = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._running = False
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    # ----------------------------------------------------------------- inputs
    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged_reasons:
            self._logged_reasons.add(key)
            self.get_logger().warning(message)

    def _bad_input(self, source: str, reason: str) -> None:
        with self._lock:
            if self.session is not None:
                self.session.record_bad_input(source, reason)
        self._log_once(f"{source}:{reason}", f"ignored {source}: {reason}")

    def _on_image(self, msg) -> None:
        dropped = self._slot.put(msg)
        with self._lock:
            if self.session is not None:
                self.session.on_image_received(stamp_to_sec(msg.header.stamp))
                self.session.stats.dropped_frames += int(dropped)

    def _on_rig_image(self, name: str, msg) -> None:
        """One rig camera's image: a frame goes to the worker once every camera has one."""
        with self._lock:
            if self.session is None or self._rig_sync is None:
                return
            dropped_before = self._rig_sync.dropped
            frame = self._rig_sync.add(name, stamp_to_sec(msg.header.stamp), msg)
            self.session.stats.dropped_frames += self._rig_sync.dropped - dropped_before
            if frame is not None:
                self.session.on_image_received(frame.stamp)  # a rig frame counts as one image
        if frame is not None:
            dropped = self._slot.put(frame)
            with self._lock:
                if self.session is not None:
                    self.session.stats.dropped_frames += int(dropped)

    def _on_camera_info(self, msg: CameraInfo, rig_camera: str = "") -> None:
        try:
            camera = camera_info_to_camera(msg)
        except ValueError as exc:
            self._bad_input("camera_info", str(exc))
            return
        if rig_camera:
            if isinstance(camera, PanoramaCamera):
                self._bad_input("camera_info", f"rig camera {rig_camera}: an equirectangular camera_info; a rig's "
                                "cameras are pinholes")
            else:
                self._rig_camera_info[rig_camera] = camera
            return
        if isinstance(camera, PanoramaCamera):
            # A panorama's model is its image size: its camera_info ("equirectangular") is fine
            # and carries nothing to keep; with camera.model pinhole it is the wrong camera.
            if self.settings.camera.model != "panorama":
                self._bad_input("camera_info", "an equirectangular camera_info, but camera.model is "
                                f"{self.settings.camera.model!r}")
            return
        self._camera_info = camera

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            pose = odometry_to_pose(msg)
            with self._lock:
                self.session.on_odometry(stamp_to_sec(msg.header.stamp), pose)
                self._odometry_arrived.notify_all()
        except ValueError as exc:
            self._bad_input("odom", str(exc))

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            yaw = quaternion_to_yaw_checked(msg.pose.pose.orientation)
            pose = np.array([msg.pose.pose.position.x, msg.pose.pose.position.y, yaw])
            cov = covariance_from_ros(msg.pose.covariance)
            if not np.all(np.diag(cov) > 0):
                cov = None  # RViz may send zeros: use the configured seed uncertainty
            with self._lock:
                self.session.seed(stamp_to_sec(msg.header.stamp), pose, cov)
            self.get_logger().info(f"seeded from /initialpose at ({pose[0]:.1f}, {pose[1]:.1f})")
        except ValueError as exc:
            self._bad_input("initialpose", str(exc))

    def _on_navsat(self, msg: NavSatFix) -> None:
        try:
            if msg.status.status < 0:
                raise ValueError("no GNSS fix (status < 0)")
            x, y, _ = self.settings.datum_object().geodetic_to_map(msg.latitude, msg.longitude, msg.altitude)
            xy = (float(x), float(y))
            stamp = stamp_to_sec(msg.header.stamp)
            with self._lock:
                prior = self.session.tracker.prior_at(stamp)
                yaw = prior[0][2] if prior is not None else self.settings.initial_pose.yaw
                yaw_var = prior[1][2, 2] if prior is not None else math.pi**2
                var_xy = max(msg.position_covariance[0], msg.position_covariance[4], 1.0)
                self.session.seed(stamp, np.array([xy[0], xy[1], yaw]), np.diag([var_xy, var_xy, yaw_var]))
        except ValueError as exc:
            self._bad_input("fix", str(exc))

    def _seed_from_parameters(self, stamp: float) -> None:
        init = self.settings.initial_pose
        if init.enabled:
            cov = np.diag([init.std_xy_m**2, init.std_xy_m**2, math.radians(init.std_yaw_deg)**2])
            self.session.seed(stamp, np.array([init.x, init.y, init.yaw]), cov, standing=True)

    # ----------------------------------------------------------------- worker
    def _camera_for(self, msg, width: int, height: int, rig_camera: str = "") -> MountedCamera:
        cam = self.settings.camera
        base_from_camera = self._extrinsics_from_tf(msg.header.frame_id) or cam.extrinsics(rig_camera)
        if cam.model == "panorama":
            return MountedCamera(PanoramaCamera(width, height), base_from_camera)
        info = self._rig_camera_info.get(rig_camera) if rig_camera else self._camera_info
        which = f"rig camera {rig_camera}" if rig_camera else "the pinhole camera"
        if info is None:
            raise ValueError(f"no camera_info received yet for {which}")
        if (info.width, info.height) != (width, height):
            raise ValueError(f"{which}: image is {width}x{height} but camera_info says {info.width}x{info.height}")
        return MountedCamera(info, base_from_camera)

    def _frame_inputs(self, item) -> tuple[object, np.ndarray | list[np.ndarray], MountedCamera | CameraRig, float]:
        """(header stamp, image(s), camera or rig, stamp in seconds) of a worker item: an image
        message, or a RigFrame of messages (stamped by its reference camera)."""
        if isinstance(item, RigFrame):
            names = self.settings.camera.rig_names()
            images = [image_to_rgb(m) for m in item.items]
            rig = CameraRig(tuple(self._camera_for(m, im.shape[1], im.shape[0], n)
                                  for m, im, n in zip(item.items, images, names)), names)
            return item.items[0].header.stamp, images, rig, item.stamp
        image = image_to_rgb(item)
        return item.header.stamp, image, self._camera_for(item, image.shape[1], image.shape[0]), \
            stamp_to_sec(item.header.stamp)

    def _extrinsics_from_tf(self, frame_id: str) -> SE3 | None:
        if self._tf_buffer is None or not frame_id:
            return None
        try:
            tf = self._tf_buffer.lookup_transform(self.settings.base_frame, frame_id, rclpy.time.Time())
        except Exception as exc:  # tf2 raises several lookup exception types
            self._log_once("tf", f"no TF {self.settings.base_frame} -> {frame_id} ({exc}); using parameters")
            return None
        extrinsics = transform_to_se3(tf.transform)  # the bag reader's conversion
        return SE3(extrinsics.rotation.float(), extrinsics.translation.float())  # as the parameters' (float32)

    def _work(self) -> None:
        while self._running:
            msg = self._slot.take(timeout=0.2)
            if msg is None:
                continue
            try:
                if not self._process(msg):
                    return
                self._last_internal_error = ""
            except Exception as exc:  # noqa: BLE001 (one bad frame must not end localization)
                # The worker is the only thread that localizes: if it died, /diagnostics would keep
                # reporting the last good status while nothing is published. Count, report, go on.
                self._internal_errors += 1
                self._last_internal_error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"frame failed ({self._last_internal_error}); continuing with the next one")

    def _process(self, msg) -> bool:
        """Localize one image (one rig frame) and publish; False when the session is gone (the
        worker stops)."""
        try:
            header_stamp, image, camera, stamp = self._frame_inputs(msg)
        except ValueError as exc:
            self._bad_input("image", str(exc))
            return True
        with self._lock:
            if self.session is None:
                return False
            # Odometry often lags the camera by a few ms; waiting briefly for it makes the prior and
            # map->odom interpolate instead of extrapolate. Bounded, so a dead odometry topic costs little.
            self._odometry_arrived.wait_for(lambda: self.session is None
                                            or self.session.tracker.odometry_covers(stamp),
                                            timeout=self.settings.odom_wait_s)
            if self.session is None:
                return False
            session = self.session
            frame = session.start_frame(stamp)
        # Inference runs without the lock: odometry, camera_info, seeds and /diagnostics go on.
        result, latency_ms = None, None
        if frame.result is None:
            started = time.perf_counter()
            result = session.localizer.localize(image, camera, frame.prior, frame.prior_cov, stamp,
                                                **frame.localize_kwargs())
            latency_ms = (time.perf_counter() - started) * 1e3
        with self._lock:
            if self.session is not session:
                return self.session is not None
            result = session.complete_frame(frame, result, latency_ms)
            odom = session.tracker.odom_at(stamp)
        self.last_result = result
        if result.status != Status.OK:
            self._log_once(f"status:{result.status.name}", f"{result.status.name}: {result.reason}")
            return True
        self._publish_pose(header_stamp, result)
        self._publish_tf(header_stamp, result, odom[0] if odom is not None else None)
        self._publish_debug(header_stamp, image, result)
        return True

    # ----------------------------------------------------------------- outputs
    def _publish_pose(self, stamp, result: LocalizationResult) -> None:
        out = PoseWithCovarianceStamped()
        out.header.stamp = stamp
        out.header.frame_id = self.settings.map_frame
        out.pose.pose.position.x, out.pose.pose.position.y = float(result.pose[0]), float(result.pose[1])
        out.pose.pose.orientation = pose_to_quaternion(float(result.pose[2]))
        out.pose.covariance = covariance_to_ros(result.covariance)
        self._pubs["pose"].publish(out)

    def _publish_tf(self, stamp, result: LocalizationResult, odom_pose: np.ndarray | None) -> None:
        s = self.settings
        if s.tf_mode == "none":
            return
        if s.tf_mode == "map_to_odom":
            if odom_pose is None:
                return
            transform = (s.map_frame, s.odom_frame, map_from_odom(result.pose, odom_pose))
        else:
            transform = (s.map_frame, s.leaf_frame, np.asarray(result.pose, dtype=float))
        self.last_transform = (int(stamp.sec) * 10**9 + int(stamp.nanosec), *transform)
        if self._tf_broadcaster is None:
            return
        msg = TransformStamped()
        msg.header.stamp = stamp
        msg.header.frame_id, msg.child_frame_id = transform[0], transform[1]
        msg.transform.translation.x, msg.transform.translation.y = float(transform[2][0]), float(transform[2][1])
        msg.transform.rotation = pose_to_quaternion(float(transform[2][2]))
        self._tf_broadcaster.sendTransform(msg)

    def _publish_debug(self, stamp, image: np.ndarray | list[np.ndarray], result: LocalizationResult) -> None:
        # Debug output costs time: build it only when someone listens.
        if self._pubs["markers"].get_subscription_count() > 0:
            self._pubs["markers"].publish(self._markers(stamp, result))
        if self._pubs["debug_image"].get_subscription_count() > 0 and result.aerial_image is not None:
            from ..eval.visualize import draw_matches

            canvas = draw_matches(image, result.aerial_image, result.matches)
            msg = Image()
            msg.header.stamp = stamp
            msg.header.frame_id = self.settings.map_frame
            msg.height, msg.width = canvas.shape[:2]
            msg.encoding, msg.step = "rgb8", canvas.shape[1] * 3
            msg.data = canvas.tobytes()
            self._pubs["debug_image"].publish(msg)

    def _markers(self, stamp, result: LocalizationResult) -> MarkerArray:
        markers = MarkerArray()
        ellipse = Marker()
        ellipse.header.stamp, ellipse.header.frame_id = stamp, self.settings.map_frame
        ellipse.ns, ellipse.id, ellipse.type = "covariance", 0, Marker.CYLINDER
        major, minor, angle = covariance_ellipse(result.covariance[:2, :2], sigma=2.0)
        ellipse.pose.position.x, ellipse.pose.position.y = float(result.pose[0]), float(result.pose[1])
        ellipse.pose.orientation = pose_to_quaternion(angle)
        ellipse.scale.x, ellipse.scale.y, ellipse.scale.z = max(2 * major, 0.05), max(2 * minor, 0.05), 0.05
        ellipse.color.r, ellipse.color.g, ellipse.color.a = 0.1, 0.6, 0.5
        markers.markers.append(ellipse)
        points = Marker()
        points.header = ellipse.header
        points.ns, points.id, points.type = "matches", 1, Marker.POINTS
        points.scale.x = points.scale.y = 0.3
        points.color.r, points.color.b, points.color.a = 1.0, 0.2, 0.8
        from geometry_msgs.msg import Point
        points.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in result.matches.map_xy]
        markers.markers.append(points)
        return markers

    def _publish_diagnostics(self) -> None:
        if self.session is None or "diagnostics" not in self._pubs:
            return
        with self._lock:
            stats = self.session.stats
            status_name, reason = stats.last_status, stats.last_reason
            values = {
                "input_rate_hz": f"{stats.input_rate_hz():.2f}",
                "latency_ms_p50": f"{stats.latency_ms(50):.1f}",
                "latency_ms_p95": f"{stats.latency_ms(95):.1f}",
                "frames": str(stats.frames),
                "dropped_frames": str(stats.dropped_frames),
                "bad_inputs": str(sum(stats.bad_inputs.values())),
                "bad_inputs_by_source": ", ".join(f"{k}={v}" for k, v in sorted(stats.bad_inputs.items())),
                "statuses": ", ".join(f"{k}={v}" for k, v in sorted(stats.statuses.items())),
                "time_jumps": str(stats.time_jumps),
                "backend": str(getattr(self.session.localizer, "backend_name", "unknown")),
                "tile_coverage": "" if stats.last_coverage is None else f"{stats.last_coverage:.3f}",
                "last_status": status_name,
                "last_reason": reason,
                # matcher runs for the last frame: more than 1 while the heading is loose
                "yaw_hypotheses": "" if self.last_result is None else str(self.last_result.yaw_hypotheses),
                "tf_output": ("available" if self._tf_broadcaster is not None else
                              "unavailable: tf2_ros is not installed" if not TF2_AVAILABLE else "disabled"),
                "internal_errors": str(self._internal_errors),
            }
        if self._last_internal_error:  # the last frame failed inside the node: say so, loudly
            status_name, reason = "INTERNAL_ERROR", self._last_internal_error
        diag = DiagnosticStatus()
        diag.name = f"{self.get_name()}: localization"
        diag.hardware_id = "cvfm_ros"
        diag.level = (DiagnosticStatus.OK if status_name == "OK" else
                      DiagnosticStatus.ERROR if status_name in ("NO_TILES", "BAD_INPUT", "INTERNAL_ERROR")
                      else DiagnosticStatus.WARN)
        diag.message = f"{status_name}: {reason}" if reason else status_name
        diag.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diag]
        self._pubs["diagnostics"].publish(array)


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = LocalizerNode()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_worker()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
