import numpy as np
import pytest
import torch

from cvfm_ros.model.export import export_module_onnx
from cvfm_ros.runtime.backends import OnnxRuntimeBackend, TorchBackend, select_backend


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image, yaw):
        f = self.conv(image)
        return f.mean(dim=(2, 3)), torch.atan2(torch.sin(yaw), torch.cos(yaw)) + f.amax(dim=(1, 2, 3))


def _example():
    rng = np.random.default_rng(0)
    return {"image": rng.random((1, 3, 16, 16), dtype=np.float32), "yaw": np.array([0.3], np.float32)}


def test_onnxruntime_agrees_with_torch(tmp_path):
    module = Tiny().eval()
    example = _example()
    args = tuple(torch.as_tensor(example[n]) for n in ("image", "yaw"))
    path = export_module_onnx(module, args, ["image", "yaw"], ["feat", "score"], tmp_path / "m.onnx")
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    ref = TorchBackend(module, ["image", "yaw"], ["feat", "score"])(example)
    out = OnnxRuntimeBackend(path, ["CPUExecutionProvider"])(example)
    for key in ref:
        assert np.allclose(ref[key], out[key], atol=1e-5)


def test_auto_selection_on_cpu_validates_and_records_attempts(tmp_path):
    sel = select_backend("auto", "auto", Tiny().eval(), _example(), ["image", "yaw"], ["feat", "score"],
                         tmp_path, "k", ["feat", "score"], {"feat": 1e-4, "score": 1e-4})
    names = [n for n, _ in sel.attempts]
    if not torch.cuda.is_available():
        assert names[0] == "tensorrt" and "TensorRT not installed" in sel.attempts[0][1]
        assert sel.backend.name == "onnxruntime-cpu" and names[-1] == "onnxruntime-cpu"


def test_explicit_backend_failure_names_the_parameter(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the failure case needs a CPU-only machine")
    with pytest.raises(ValueError, match="matcher.device"):
        select_backend("torch", "cuda", Tiny().eval(), _example(), ["image", "yaw"], ["feat", "score"],
                       tmp_path, "k", ["feat"], {})
    with pytest.raises(ValueError, match="matcher.backend: tensorrt failed"):
        select_backend("tensorrt", "auto", Tiny().eval(), _example(), ["image", "yaw"], ["feat", "score"],
                       tmp_path, "k", ["feat"], {})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (GPU paths run on GPU hosts)")
def test_cuda_torch_backend_agrees():
    module = Tiny().eval()
    ref = TorchBackend(module, ["image", "yaw"], ["feat", "score"])(_example())
    out = TorchBackend(module, ["image", "yaw"], ["feat", "score"], "cuda")(_example())
    assert np.allclose(ref["feat"], out["feat"], atol=1e-3)


def test_export_key_follows_weights_solver_config_and_camera():
    # A stale export would silently run old code or settings: the key must change with each.
    from dataclasses import replace

    from cvfm_ros.model import ViewBridgeMatcher
    from cvfm_ros.model.toy import tiny_matcher_config
    from cvfm_ros.runtime.localizer import artifact_key

    torch.manual_seed(0)
    config = tiny_matcher_config()
    matcher = ViewBridgeMatcher(config)
    example = {"ground": np.zeros((1, 3, 32, 64), np.float32)}
    key = artifact_key(matcher, "pano", example)
    assert key == artifact_key(matcher, "pano", example)
    assert key != artifact_key(matcher, "pinhole", example)
    robust_off = ViewBridgeMatcher(replace(config, pose=replace(config.pose, robust_iterations=0)))
    robust_off.load_state_dict(matcher.state_dict())
    assert key != artifact_key(robust_off, "pano", example)
    with torch.no_grad():
        next(matcher.parameters()).add_(1e-3)
    assert key != artifact_key(matcher, "pano", example)
