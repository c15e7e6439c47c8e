"""StyleNet f_sty: style transfer between the source and target domains (supplementary §A:
"we follow UniFrame and use ALADIN").

**AdaIN** (Huang & Belongie, ICCV 2017), as UniFrame uses it: encode content and style
images, give the content features the style features' channel means and standard deviations,

    AdaIN(c, s) = σ(s) · (c − μ(c)) / σ(c) + μ(s),

and decode; ``alpha`` blends AdaIN and content features (alpha·AdaIN + (1 − alpha)·c).
**ALADIN** (Ruta et al., ICCV 2021, "All Layer Adaptive Instance Normalization") takes style
statistics from *every* encoder level, not only the deepest: here the decoder receives an
AdaIN-normalised skip connection at each level (``aladin=True``); ``aladin=False`` is the
classic single-level AdaIN.

UniFrame's encoder is a frozen ImageNet VGG-19; no weights can be downloaded here, so our
default encoder is small and **trained on the benchmark's own images** as an autoencoder
first (see :mod:`srpose_lib.train.style`). A local VGG-19 state_dict (``vgg_weights``) gives
UniFrame's encoder instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

# VGG-19 feature indices of relu1_1, relu2_1, relu3_1, relu4_1 (UniFrame stops at relu4_1)
_VGG_RELU = (1, 6, 11, 20)
_VGG_CHANNELS = (64, 128, 256, 512)


@dataclass(frozen=True)
class StyleNetConfig:
    widths: tuple[int, ...] = (16, 32, 64)  # encoder channels per level (one pooling between levels)
    aladin: bool = True  # AdaIN at every level (ALADIN) or at the deepest level only (AdaIN)
    vgg_weights: str = ""  # path to a local torchvision VGG-19 state_dict: use it as the frozen encoder

    def __post_init__(self):
        if self.vgg_weights and not 1 <= len(self.widths) <= 4:
            raise ConfigError("a VGG encoder has 1 to 4 levels (relu1_1 .. relu4_1)", "set widths to 1-4 entries")


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give ``content`` features (B, C, H, W) the channel mean and std of ``style``."""
    mc, sc = content.mean((2, 3), keepdim=True), content.std((2, 3), keepdim=True) + eps
    ms, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True) + eps
    return (content - mc) / sc * ss + ms


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True))


class StyleNet(nn.Module):
    """Encoder (per-level features), AdaIN at one or all levels, and a decoder back to an
    image in [0, 1]."""

    def __init__(self, cfg: StyleNetConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.vgg_weights:
            self.encoder_levels = _vgg_levels(cfg.vgg_weights, len(cfg.widths))
            widths = _VGG_CHANNELS[:len(cfg.widths)]
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        else:
            widths = cfg.widths
            chans = (3,) + tuple(widths)
            self.encoder_levels = nn.ModuleList(_block(chans[i], chans[i + 1]) for i in range(len(widths)))
            self.mean = self.std = None
        self.widths = tuple(widths)
        # decoder: from the deepest level up; at each shallower level it merges a skip
        dec = []
        for i in range(len(widths) - 1, 0, -1):
            skip = widths[i - 1] if cfg.aladin else 0
            dec.append(nn.ModuleDict({"up": _block(widths[i], widths[i - 1]), "merge": _block(widths[i - 1] + skip, widths[i - 1])}))
        self.decoder_levels = nn.ModuleList(dec)
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1, padding_mode="reflect")

    @property
    def pretrained_encoder(self) -> bool:
        return bool(self.cfg.vgg_weights)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of every level; level ``l`` has stride 2**l."""
        if self.mean is not None:
            x = (x - self.mean) / self.std
        feats = []
        for i, level in enumerate(self.encoder_levels):
            if i > 0 and not self.pretrained_encoder:
                x = F.avg_pool2d(x, 2)
            x = level(x)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for dec, skip in zip(self.decoder_levels, reversed(feats[:-1])):
            x = F.interpolate(dec["up"](x), size=skip.shape[-2:], mode="nearest")
            x = dec["merge"](torch.cat([x, skip], 1) if self.cfg.aladin else x)
        return torch.sigmoid(self.to_rgb(x))

    def transfer_features(self, content: list[torch.Tensor], style: list[torch.Tensor],
                          alpha: torch.Tensor | float) -> list[torch.Tensor]:
        """alpha·AdaIN + (1 − alpha)·content at every conditioned level (all with ALADIN,
        the deepest otherwise); ``alpha`` is a float or (B,) tensor."""
        a = torch.as_tensor(alpha, dtype=content[0].dtype, device=content[0].device)
        a = a.view(-1, 1, 1, 1) if a.dim() else a
        out = []
        for i, (c, s) in enumerate(zip(content, style)):
            conditioned = self.cfg.aladin or i == len(content) - 1
            out.append(a * adain(c, s) + (1 - a) * c if conditioned else c)
        return out

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor | float = 1.0) -> torch.Tensor:
        """``content`` restyled towards ``style`` (both (B, 3, H, W) in [0, 1])."""
        return self.decode(self.transfer_features(self.encode(content), self.encode(style), alpha))


def _vgg_levels(path: str, n: int) -> nn.ModuleList:
    """torchvision VGG-19 features cut into levels ending at relu1_1, relu2_1, ..., frozen."""
    import torchvision

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"VGG weights file {file} not found",
                          "give the path of a torchvision VGG-19 state_dict (features.* keys or bare) or leave vgg_weights empty")
    state = torch.load(file, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    features = torchvision.models.vgg19(weights=None).features
    own = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier")}
    missing = features.load_state_dict(own, strict=False).missing_keys
    needed = [k for k in missing if int(k.split(".")[0]) <= _VGG_RELU[n - 1]]
    if needed:
        raise ConfigError(f"VGG weights file {file} lacks {', '.join(needed[:4])}",
                          "use a torchvision vgg19 state_dict")
    cuts = (0,) + tuple(i + 1 for i in _VGG_RELU[:n])
    levels = nn.ModuleList(nn.Sequential(*list(features.children())[cuts[i]:cuts[i + 1]]) for i in range(n))
    for p in levels.parameters():
        p.requires_grad_(False)
    return levels
