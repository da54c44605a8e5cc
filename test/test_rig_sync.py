"""Grouping a rig's images into frames (runtime/rig_sync.py): the node and the replay rely on it."""
import pytest

from cvfm_ros.runtime.rig_sync import RigSynchronizer


def test_frames_complete_when_every_camera_has_an_image_within_the_tolerance():
    sync = RigSynchronizer(("front", "left", "rear"), tolerance_s=0.01)
    assert sync.add("left", 1.003, "L1") is None
    assert sync.add("front", 1.000, "F1") is None
    frame = sync.add("rear", 1.006, "R1")  # arrival order does not matter
    assert frame.items == ["F1", "L1", "R1"] and frame.stamp == 1.000  # the reference camera's stamp
    assert frame.spread_s == pytest.approx(0.006) and sync.dropped == 0
    # The next capture: one camera is late by more than the tolerance -> no frame with it.
    sync.add("front", 1.100, "F2")
    sync.add("left", 1.102, "L2")
    assert sync.add("rear", 1.150, "R2") is None
    # The capture after that completes with the images that belong together; the stale ones go.
    sync.add("front", 1.200, "F3")
    frame = sync.add("left", 1.201, "L3")
    assert frame is None  # rear's 1.150 is 0.05 s off
    frame = sync.add("rear", 1.204, "R3")
    assert frame.items == ["F3", "L3", "R3"]
    assert sync.dropped == 3  # F2, L2, R2 never formed a frame


def test_old_images_are_refused_and_queues_are_bounded():
    sync = RigSynchronizer(("a", "b"), tolerance_s=0.0, queue=2)
    for k in range(4):  # camera b is silent: a's queue keeps only the last two
        sync.add("a", float(k), k)
    assert sync.dropped == 2
    assert sync.add("b", 3.0, "b3").items == [3, "b3"]
    assert sync.add("a", 2.5, "late") is None and sync.dropped == 4  # older than an emitted frame (and a's 2.0)
    sync.reset()
    assert sync.add("a", 0.5, "x") is None  # after a reset (time jump back) old stamps are fine again
    assert sync.add("b", 0.5, "y").items == ["x", "y"]


def test_a_clock_jump_back_starts_over():
    sync = RigSynchronizer(("a", "b"), tolerance_s=0.01, jump_s=1.0)
    sync.add("a", 100.0, 1)
    assert sync.add("b", 100.0, 2) is not None
    assert sync.add("a", 99.5, 3) is None and sync.dropped == 1  # jitter: a stale image, refused
    sync.add("a", 5.0, 4)  # the bag restarted
    assert sync.add("b", 5.0, 5).items == [4, 5]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="distinct camera names"):
        RigSynchronizer(("a", "a"), 0.01)
    with pytest.raises(ValueError, match="camera.rig_sync_tolerance_s"):
        RigSynchronizer(("a",), -1.0)
    with pytest.raises(ValueError, match="unknown camera 'c'"):
        RigSynchronizer(("a", "b"), 0.01).add("c", 1.0, None)
