"""Networks. The pose predictor f_kp (SimpleBaseline) lives in ``pose_net``, its encoders in
``backbones``."""

from .backbones import ARCHS, build_backbone
from .pose_net import ModelConfig, PoseNet, build_pose_net, get_parameter_groups, model_summary

__all__ = [
    "ARCHS",
    "ModelConfig",
    "PoseNet",
    "build_backbone",
    "build_pose_net",
    "get_parameter_groups",
    "model_summary",
]
