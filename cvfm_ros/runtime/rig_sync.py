"""Approximate-time grouping of a camera rig's images into rig frames (one image per camera).

Drivers of a rig trigger their cameras together but stamp and deliver them a few milliseconds
apart, in any order. `RigSynchronizer` keeps the last few images of each camera and emits a rig
frame as soon as every camera has an image within `tolerance_s` of each other; the images a frame
used, and every older one, are then discarded (frames come out in time order, none twice).

Written here rather than taken from message_filters: that package is not installable from the
package index, and the node and the bag replay (which has no ROS) must group frames identically.

Convention: stamps are seconds (header stamps); a frame's stamp is that of the rig's first camera
(the reference camera) so that the prior and the published pose refer to one capture time.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class RigFrame:
    """One image per camera, in the rig's camera order, and the reference camera's stamp."""

    stamp: float
    items: list[Any]
    stamps: list[float]

    @property
    def spread_s(self) -> float:
        return max(self.stamps) - min(self.stamps)


class RigSynchronizer:
    """Group per-camera messages into RigFrames (see the module docstring).

    `names`: the rig's cameras (the first is the reference); `tolerance_s`: the largest spread of
    the stamps in one frame; `queue`: images kept per camera while waiting for the others;
    `jump_s`: an image older than the last frame by more than this resets (a clock jump back).
    `dropped` counts images discarded without being part of a frame.
    """

    def __init__(self, names: tuple[str, ...] | list[str], tolerance_s: float, queue: int = 5,
                 jump_s: float = float("inf")) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"rig: expected distinct camera names, got {list(names)}")
        if not tolerance_s >= 0:
            raise ValueError(f"camera.rig_sync_tolerance_s: expected >= 0 seconds, got {tolerance_s}")
        if queue < 1:
            raise ValueError(f"queue: expected >= 1, got {queue}")
        self.names = tuple(names)
        self.tolerance_s = float(tolerance_s)
        self._queues: dict[str, deque] = {n: deque() for n in self.names}
        self._queue = queue
        # An image this much older than the last frame means the clock jumped back (a bag
        # restarted, sim time reset): start over instead of refusing every image from then on.
        self.jump_s = float(jump_s)
        self.dropped = 0
        self._last_stamp = float("-inf")

    def reset(self) -> None:
        """Forget queued images (a time jump back: old stamps would never match again)."""
        self.dropped += sum(len(q) for q in self._queues.values())
        for q in self._queues.values():
            q.clear()
        self._last_stamp = float("-inf")

    def add(self, name: str, stamp: float, item: Any) -> RigFrame | None:
        """Queue `item` of camera `name` at `stamp`; the completed RigFrame, or None."""
        if name not in self._queues:
            raise ValueError(f"rig: unknown camera {name!r} (cameras: {', '.join(self.names)})")
        if stamp < self._last_stamp - self.jump_s:
            self.reset()
        if stamp <= self._last_stamp:  # older than a frame already emitted: can never be used
            self.dropped += 1
            return None
        q = self._queues[name]
        q.append((stamp, item))
        if len(q) > self._queue:
            q.popleft()
            self.dropped += 1
        return self._match(name, stamp)

    def _match(self, name: str, stamp: float) -> RigFrame | None:
        """The frame the new image at `stamp` completes: for every other camera the image nearest
        to it, if all lie within the tolerance of each other."""
        picks: dict[str, tuple[float, Any]] = {}
        for other, q in self._queues.items():
            if other == name:
                picks[other] = q[-1]
                continue
            if not q:
                return None
            picks[other] = min(q, key=lambda entry: abs(entry[0] - stamp))
        stamps = [picks[n][0] for n in self.names]
        if max(stamps) - min(stamps) > self.tolerance_s:
            return None
        newest = max(stamps)
        for n, q in self._queues.items():  # the frame's images and everything older are used up
            while q and q[0][0] <= picks[n][0]:
                entry = q.popleft()
                self.dropped += int(entry is not picks[n])
        self._last_stamp = newest
        return RigFrame(stamps[0], [picks[n][1] for n in self.names], stamps)
