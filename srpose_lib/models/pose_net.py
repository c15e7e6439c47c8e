"""The pose predictor f_kp: SimpleBaseline (Xiao et al. 2018), as the supplementary §A uses it.

ResNet encoder -> ``len(deconv_channels)`` x [ConvTranspose2d(k4, s2, p1) -> BN -> ReLU] -> 1x1
conv to K heatmaps. With ResNet-101 and three 256-channel blocks, a 256 px image gives 64x64
heatmaps (stride 4), as in TLL's ``pose_resnet.py``. Images come in as (B, 3, H, W) floats in
[0, 1]; the network applies the ImageNet mean/std itself, so data stays in [0, 1] everywhere.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from .backbones import ARCHS, build_backbone, check_arch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TUPLE_FIELDS = ("deconv_channels", "tiny_widths", "tiny_blocks")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """f_kp architecture. Plain JSON-friendly values: the config is hashed for the checkpoint cache.

    ``pretrained``: ``"none"``, ``"imagenet"`` (torchvision weights API; downloads only when the
    file is not in ``$TORCH_HOME/hub/checkpoints``) or the path of a local ``.pth`` state_dict.
    The published numbers all use an ImageNet-pretrained ResNet-101; ``"none"`` is a deviation.
    ``tiny_*`` fields are used by ``arch="resnet_tiny"`` only.
    """

    arch: str = "resnet101"
    pretrained: str = "none"
    deconv_channels: tuple[int, ...] = (256, 256, 256)
    tiny_widths: tuple[int, ...] = (16, 32, 64, 128)
    tiny_blocks: tuple[int, ...] = (1, 1, 1, 1)
    tiny_stem_stride: int = 2
    channels_last: bool = False

    def __post_init__(self):
        for name in _TUPLE_FIELDS:  # JSON round trips turn tuples into lists
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        check_arch(self.arch)
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(_is_pos_int(v) for v in value):
                raise ConfigError(f"ModelConfig.{name} must be a tuple of positive ints, got {value!r}",
                                  f"for example {name}={getattr(ModelConfig, name)!r}")
        if not self.tiny_widths or len(self.tiny_widths) != len(self.tiny_blocks):
            raise ConfigError(
                f"ModelConfig.tiny_widths {self.tiny_widths} and tiny_blocks {self.tiny_blocks} "
                "must be non-empty and of the same length (one entry per stage)",
                "for example tiny_widths=(16, 32, 64, 128), tiny_blocks=(1, 1, 1, 1)",
            )
        if not _is_pos_int(self.tiny_stem_stride):
            raise ConfigError(
                f"ModelConfig.tiny_stem_stride must be a positive int, got {self.tiny_stem_stride!r}",
                "use 1, 2 or 4",
            )
        if not isinstance(self.channels_last, bool):
            raise ConfigError(f"ModelConfig.channels_last must be a bool, got {self.channels_last!r}",
                              "use True or False")
        self._check_pretrained()

    def _check_pretrained(self):
        p = self.pretrained
        if not isinstance(p, str) or not p:
            raise ConfigError(f"ModelConfig.pretrained must be a non-empty str, got {p!r}",
                              "use 'none', 'imagenet' or the path of a .pth file")
        if p == "imagenet" and self.arch == "resnet_tiny":
            raise ConfigError("resnet_tiny has no ImageNet weights",
                              "use pretrained='none', a local resnet_tiny .pth path, or a torchvision arch")
        if p not in ("none", "imagenet") and os.sep not in p and "/" not in p and "." not in p:
            raise ConfigError(f"ModelConfig.pretrained={p!r} is neither 'none', 'imagenet' nor a file path",
                              did_you_mean(p, ["none", "imagenet"]) + " (or a path such as 'weights.pth')")


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


class PoseNet(nn.Module):
    """SimpleBaseline: normalise -> backbone -> deconv blocks -> 1x1 conv to K heatmaps.

    Attributes: ``stride`` (input pixels per heatmap cell), ``num_keypoints``, ``config``.
    """

    def __init__(self, config: ModelConfig, num_keypoints: int):
        super().__init__()
        if not _is_pos_int(num_keypoints):
            raise ConfigError(f"num_keypoints must be a positive int, got {num_keypoints!r}",
                              "use 21 for hands or 16 for bodies")
        self.config = config
        self.num_keypoints = num_keypoints
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone, channels, backbone_stride = build_backbone(config)

        upscale = 2 ** len(config.deconv_channels)
        if backbone_stride % upscale:
            raise ConfigError(
                f"{len(config.deconv_channels)} deconv blocks upsample x{upscale}, more than the "
                f"backbone's stride {backbone_stride}: heatmaps would be larger than the image",
                "use fewer deconv_channels entries (or a larger tiny_stem_stride)",
            )
        self.stride = backbone_stride // upscale

        layers: list[nn.Module] = []
        for width in config.deconv_channels:
            layers += [
                nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, output_padding=0, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.upsampling = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, num_keypoints, 1)
        self._init_decoder()
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def _init_decoder(self):
        """SimpleBaseline init: deconv and head weights N(0, 0.001), BN 1/0, head bias 0."""
        for m in self.upsampling.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> heatmaps (B, K, H / stride, W / stride)."""
        x = (x - self.mean) / self.std
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        heatmaps = self.head(self.upsampling(self.backbone(x)))
        return heatmaps.contiguous()  # plain layout, so callers may .view() it


def build_pose_net(cfg: ModelConfig, num_keypoints: int) -> PoseNet:
    """The pose predictor f_kp for ``num_keypoints`` heatmaps."""
    return PoseNet(cfg, num_keypoints)


def get_parameter_groups(model: PoseNet, lr: float, backbone_lr_mult: float = 1.0) -> list[dict]:
    """Optimiser param groups: backbone at ``lr * backbone_lr_mult``, decoder and head at ``lr``.

    TLL's ``get_parameters`` uses ``backbone_lr_mult=0.1`` when ``finetune=True``.
    """
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    ids = {id(p) for p in model.backbone.parameters()}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return [
        {"params": backbone, "lr": lr * backbone_lr_mult, "name": "backbone"},
        {"params": rest, "lr": lr, "name": "decoder"},
    ]


def model_summary(model: nn.Module, image_size: int | tuple[int, int]) -> dict:
    """Parameter count and forward MFLOPs for one image of ``image_size``.

    FLOPs = 2 x multiply-adds of Conv2d, ConvTranspose2d and Linear layers, counted with forward
    hooks on one forward pass (BN, ReLU, pooling and additions are not counted).
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    macs = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d):  # every input pixel scatters a kernel
            k = module.kernel_size[0] * module.kernel_size[1]
            macs += inputs[0].numel() * module.out_channels // module.groups * k
        elif isinstance(module, nn.Conv2d):  # every output pixel gathers a kernel
            k = module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() * module.in_channels // module.groups * k
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "mflops": 2 * macs / 1e6,
        "input_size": (h, w),
        "output_shape": tuple(out.shape[1:]),
    }


__all__ = ["ARCHS", "ModelConfig", "PoseNet", "build_pose_net", "get_parameter_groups", "model_summary"]
