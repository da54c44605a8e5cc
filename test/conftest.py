import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_torch_thread():
    """The machine's 2 cores are shared: with one thread, small ops do not stall on busy spinning
    worker threads when other processes load the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found next to the checkout ({SHARED})")
    return SHARED


os.environ.setdefault("CVFM_ROS_TEST", "1")


@pytest.fixture(scope="session")
def tiny_drive(tmp_path_factory):
    """A short generated drive (bag + tiles) shared by the replay and node tests."""
    from cvfm_ros.data.drive import DriveSpec, generate_drive

    root = tmp_path_factory.mktemp("drive") / "drive"
    return generate_drive(root, DriveSpec(seed=3, duration_s=4.0, world_size_m=160.0, zooms=(18, 19, 20)), progress=False)


@pytest.fixture(scope="session")
def tiny_rig_drive(tmp_path_factory):
    """A short generated drive of a 4-pinhole rig (front, left, rear, right; 256x128 images)."""
    from cvfm_ros.data.drive import DriveSpec, generate_drive

    root = tmp_path_factory.mktemp("rig_drive") / "drive"
    spec = DriveSpec(seed=3, duration_s=3.0, world_size_m=160.0, zooms=(18, 19, 20), camera="rig:front,left,rear,right",
                     pinhole_size=(256, 128))
    return generate_drive(root, spec, progress=False)
