"""This project's ROS message types for bags: the rosbags type store (ROS 2 Jazzy plus our
`msg/*.msg`) and `MatchReport` as a plain dataclass for code that does not touch rosbags."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

# The ROS package that owns our message definitions (an ament_cmake interface package; see
# docs/MESSAGES.md). Type names in bags are "<package>/msg/<Name>".
MSG_PACKAGE = "cvfm_ros_msgs"
MATCH_REPORT_TYPE = f"{MSG_PACKAGE}/msg/MatchReport"

Storage = Literal["mcap", "sqlite3"]


def _msg_dirs() -> list[Path]:
    """Where `msg/*.msg` can live: the source tree, then ROS / pip install prefixes."""
    dirs = [Path(__file__).resolve().parents[2] / "msg"]
    env = os.environ.get("CVFM_ROS_MSG_DIR")
    if env:
        dirs.insert(0, Path(env))
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            dirs.append(Path(prefix) / "share" / "cvfm_ros" / "msg")
    return dirs


def make_typestore() -> "Typestore":
    """The ROS 2 Jazzy type store plus this project's messages from `msg/*.msg`.

    Our types are registered as `cvfm_ros_msgs/msg/<file stem>`. Raises ValueError when no
    `msg/` folder with MatchReport.msg is found (set CVFM_ROS_MSG_DIR to point at one).
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for folder in _msg_dirs():
        if (folder / "MatchReport.msg").is_file():
            types: dict[str, Any] = {}
            for path in sorted(folder.glob("*.msg")):
                types.update(get_types_from_msg(path.read_text(), f"{MSG_PACKAGE}/msg/{path.stem}"))
            store.register(types)
            return store
    raise ValueError(f"msg definitions: MatchReport.msg not found in any of {[str(d) for d in _msg_dirs()]}")


# --------------------------------------------------------------------------------------------
# Match reports (our own message), as a plain dataclass for code that does not touch rosbags.


@dataclass(frozen=True)
class MatchReport:
    """The content of `cvfm_ros_msgs/msg/MatchReport` (msg/MatchReport.msg), without the header.

    Convention: (x, y, yaw) is the pose of base_link in `frame_id` (map), yaw counter-clockwise
    from east; `covariance` is the (3, 3) covariance over (x, y, yaw); times are milliseconds.
    """

    status_code: int
    status: str
    reason: str = ""
    num_matches: int = 0
    score: float = 0.0
    time_tiles_ms: float = 0.0
    time_preprocess_ms: float = 0.0
    time_model_ms: float = 0.0
    time_solve_ms: float = 0.0
    time_total_ms: float = 0.0
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    covariance: tuple[float, ...] = field(default=(0.0,) * 9)
    frame_id: str = "map"

    STATUS_CODES = {"ok": 0, "rejected": 1, "no_imagery": 2, "no_prior": 3, "skipped": 4, "error": 5, "bad_input": 6}

    def __post_init__(self) -> None:
        if not 0 <= int(self.status_code) <= 255:
            raise ValueError(f"MatchReport.status_code: expected a uint8, got {self.status_code}")
        if not 0 <= int(self.num_matches) < 2**32:
            raise ValueError(f"MatchReport.num_matches: expected a uint32, got {self.num_matches}")
        cov = np.asarray(self.covariance, dtype=float).reshape(-1)
        if cov.size != 9:
            raise ValueError(f"MatchReport.covariance: expected 9 values (row-major 3x3), got {cov.size}")
        object.__setattr__(self, "covariance", tuple(float(v) for v in cov))

    def to_msg(self, typestore, stamp_ns: int):
        """The rosbags message object, header stamped `stamp_ns`."""
        t = typestore.types
        return t[MATCH_REPORT_TYPE](
            header=_header(typestore, stamp_ns, self.frame_id),
            status_code=int(self.status_code), status=str(self.status), reason=str(self.reason),
            num_matches=int(self.num_matches), score=float(self.score),
            time_tiles_ms=float(self.time_tiles_ms), time_preprocess_ms=float(self.time_preprocess_ms),
            time_model_ms=float(self.time_model_ms), time_solve_ms=float(self.time_solve_ms),
            time_total_ms=float(self.time_total_ms), x=float(self.x), y=float(self.y), yaw=float(self.yaw),
            covariance=np.asarray(self.covariance, dtype=np.float64),
        )

    @classmethod
    def from_msg(cls, msg) -> "MatchReport":
        """Build from a decoded MatchReport message (any object with its fields)."""
        return cls(
            status_code=int(msg.status_code), status=str(msg.status), reason=str(msg.reason),
            num_matches=int(msg.num_matches), score=float(msg.score), time_tiles_ms=float(msg.time_tiles_ms),
            time_preprocess_ms=float(msg.time_preprocess_ms), time_model_ms=float(msg.time_model_ms),
            time_solve_ms=float(msg.time_solve_ms), time_total_ms=float(msg.time_total_ms),
            x=float(msg.x), y=float(msg.y), yaw=float(msg.yaw),
            covariance=tuple(float(v) for v in np.asarray(msg.covariance).reshape(-1)),
            frame_id=str(msg.header.frame_id),
        )


def _header(typestore, stamp_ns: int, frame_id: str):
    t = typestore.types
    sec, nanosec = divmod(int(stamp_ns), 10**9)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)
