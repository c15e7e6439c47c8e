"""ResNet encoders for the pose predictor f_kp (SimpleBaseline; supplementary §A: ResNet-101).

``build_backbone(cfg)`` returns ``(module, out_channels, stride)``. The module maps a normalised
image (B, 3, H, W) to features (B, out_channels, H/stride, W/stride). Its parameter names are
torchvision's (``conv1.weight``, ``layer1.0.conv1.weight``, ...), so a torchvision ResNet
state_dict loads into it directly once the ``fc.*`` keys are dropped.

Weights (``cfg.pretrained``):

- ``"none"``: torchvision's random initialisation (no file is read, nothing is downloaded).
- ``"imagenet"``: torchvision's weights API, ``ResNet*_Weights.IMAGENET1K_V1`` (the weights the
  baselines' old ``model_urls`` pointed to). torchvision reads
  ``$TORCH_HOME/hub/checkpoints/<file>`` when it exists and otherwise **downloads** it, which only
  works on a machine with internet. Tests never take the download path.
- any other string: a local ``.pth`` state_dict file (see :func:`load_local_state_dict`).
"""

from __future__ import annotations

import os
import urllib.error
from collections import OrderedDict
from typing import Any, Mapping

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..errors import ConfigError, did_you_mean

# torchvision arch -> output channels; all have output stride 32.
TORCHVISION_RESNETS: dict[str, int] = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
}
ARCHS: tuple[str, ...] = (*TORCHVISION_RESNETS, "resnet_tiny")
# Layers of torchvision's ResNet that the encoder keeps (avgpool and fc are cut).
_RESNET_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def build_backbone(cfg: Any) -> tuple[nn.Module, int, int]:
    """Build the encoder named by ``cfg.arch`` and load ``cfg.pretrained`` into it."""
    check_arch(cfg.arch)
    if cfg.arch == "resnet_tiny":
        module, channels, stride = tiny_resnet(cfg.tiny_widths, cfg.tiny_blocks, cfg.tiny_stem_stride)
    else:
        net = getattr(torchvision.models, cfg.arch)(weights=None)
        module = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in _RESNET_LAYERS))
        channels, stride = TORCHVISION_RESNETS[cfg.arch], 32

    if cfg.pretrained == "imagenet":
        if cfg.arch == "resnet_tiny":
            raise ConfigError(
                "resnet_tiny has no ImageNet weights",
                "use pretrained='none', a path to a local resnet_tiny state_dict, or a torchvision arch",
            )
        _load_checked(module, imagenet_state_dict(cfg.arch), f"torchvision {cfg.arch} ImageNet weights")
    elif cfg.pretrained != "none":
        _load_checked(module, load_local_state_dict(cfg.pretrained), cfg.pretrained)
    return module, channels, stride


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ConfigError(f"unknown backbone arch {arch!r}", did_you_mean(arch, ARCHS))


def tiny_resnet(widths, blocks, stem_stride: int = 2) -> tuple[nn.Module, int, int]:
    """A small CPU-fast ResNet from torchvision's ``BasicBlock``.

    Stem conv3x3 (stride ``stem_stride``)-BN-ReLU, then one stage per width with ``blocks[i]``
    blocks; stride 1 in the first stage, 2 in the others. Init as torchvision's ResNet.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1, bias=False),
        bn1=nn.BatchNorm2d(widths[0]),
        relu=nn.ReLU(inplace=True),
    )
    inplanes = widths[0]
    for i, (width, n) in enumerate(zip(widths, blocks)):
        stride = 1 if i == 0 else 2
        downsample = None
        if stride != 1 or inplanes != width:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )
        stage = [BasicBlock(inplanes, width, stride, downsample)]
        stage += [BasicBlock(width, width) for _ in range(n - 1)]
        layers[f"layer{i + 1}"] = nn.Sequential(*stage)
        inplanes = width
    module = nn.Sequential(layers)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module, widths[-1], stem_stride * 2 ** (len(widths) - 1)


def imagenet_weights(arch: str):
    """torchvision's ``IMAGENET1K_V1`` weights enum entry for ``arch``."""
    return torchvision.models.get_model_weights(arch).IMAGENET1K_V1


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights via torchvision: from ``$TORCH_HOME/hub/checkpoints`` or downloaded."""
    weights = imagenet_weights(arch)
    target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError) as err:
        raise ConfigError(
            f"could not load ImageNet weights for {arch} from {target} ({err})",
            f"on a machine with internet download {weights.url} to {target} "
            "(or set TORCH_HOME), or use pretrained='none'",
        ) from err


def load_local_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a local backbone state_dict file.

    Accepts a plain state_dict, or a dict holding it under ``state_dict`` or ``model``; a
    ``module.`` prefix (DataParallel) is stripped, and from a whole pose-net checkpoint only the
    ``backbone.*`` entries are kept.
    """
    if not os.path.isfile(path):
        raise ConfigError(
            f"pretrained weights file not found: {path}",
            "give pretrained='none', 'imagenet' or the path of an existing .pth state_dict file",
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that is not a plain state_dict
        raise ConfigError(
            f"could not read pretrained weights file {path}: {err}",
            "save it with torch.save(model.state_dict(), path)",
        ) from err
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(
            f"pretrained weights file {path} does not hold a state_dict",
            "save it with torch.save(model.state_dict(), path)",
        )
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def _load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` (ignoring classifier ``fc.*`` keys); name mismatches clearly."""
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = module.state_dict()
    # BatchNorm's num_batches_tracked is absent from old files such as torchvision's own.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
            if keys
        ]
        raise ConfigError(
            f"weights in {source} do not match the backbone: " + "; ".join(parts),
            "check that the file was saved from the same arch (and tiny_* widths) as ModelConfig.arch",
        )
    module.load_state_dict(state, strict=False)
