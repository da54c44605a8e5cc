"""The ViewBridge-style matcher, its losses, the classical baseline and checkpoint/ONNX I/O.

One file per model part, each with its configuration dataclass at the top (docs/MODEL.md):
extractor (feature CNN + registry), lifting (BEV over height bins), surface (Surface Model),
matching (descriptors, similarity, dual-softmax), simrefiner, pose (matches + Procrustes),
matcher (the whole model), losses, baseline (flat-ground NCC), checkpoint, export (ONNX),
toy (flat textured worlds for tests).
"""
from .baseline import BaselineConfig, ClassicalBaseline
from .checkpoint import load_matcher, read_checkpoint, save_checkpoint
from .export import EXPORT_INPUTS, EXPORT_OUTPUTS, ExportableMatcher, OnnxMatcher, export_onnx
from .extractor import EXTRACTORS, CompactCNN, ExtractorConfig, build_extractor, register_extractor
from .pretrained import PretrainedExtractor, packaged_state_keys
from .lifting import BEVLifter, LiftingConfig
from .losses import LossConfig, ViewBridgeLoss, ground_truth_assignment
from .matcher import MatcherConfig, ViewBridgeMatcher, count_parameters
from .matching import MatchingConfig
from .pose import PoseSolverConfig
from .simrefiner import SimRefiner, SimRefinerConfig
from .surface import SurfaceModel, SurfaceModelConfig

__all__ = [
    "BEVLifter", "BaselineConfig", "ClassicalBaseline", "CompactCNN", "EXTRACTORS", "ExtractorConfig",
    "LiftingConfig", "LossConfig", "MatcherConfig", "MatchingConfig", "EXPORT_INPUTS", "EXPORT_OUTPUTS",
    "ExportableMatcher", "OnnxMatcher",
    "PoseSolverConfig", "PretrainedExtractor", "SimRefiner", "SimRefinerConfig", "SurfaceModel", "SurfaceModelConfig",
    "ViewBridgeLoss", "ViewBridgeMatcher", "build_extractor", "count_parameters", "export_onnx",
    "ground_truth_assignment", "load_matcher", "packaged_state_keys", "read_checkpoint", "register_extractor", "save_checkpoint",
]
