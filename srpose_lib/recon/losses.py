"""Losses of the geometric reconstruction module.

The paper's loss form and weights are not in the supplementary. Our default needs no
downloaded weights: a **multi-scale photometric loss** over an anti-aliased image pyramid,

    L_rec = 1/|S| Σ_s [(1 − α) |Î_s − I_s|₁ + α (1 − SSIM(Î_s, I_s)) / 2],

with scales (1, ½, ¼) and α = 0 (pure L1; the SSIM mix of monodepth is a config field). A
pyramid widens the capture range of the keypoint gradient: a limb a few pixels off still
overlaps its target at the coarser scales. *Our choice*: both images are first standardised
per channel (``normalise``), so a global change of exposure or white balance between the two
frames — which no warp can explain and G cannot know — does not dominate the loss. FOMM uses a VGG-19 perceptual pyramid instead;
:class:`PerceptualLoss` builds it **only from a local weights file** (``vgg_weights``), since
nothing may be downloaded here. :func:`equivariance_loss` is FOMM's keypoint equivariance
(affine part), off by default because the mean teacher's consistency already asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class RecLossConfig:
    scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # pyramid levels (fractions of the image side)
    ssim_alpha: float = 0.0  # weight of (1 − SSIM)/2 against L1 (monodepth: 0.85)
    vgg_weights: str = ""  # local torchvision VGG-19 state_dict: add FOMM's perceptual pyramid
    vgg_weight: float = 1.0  # weight of the perceptual term (with vgg_weights)
    normalise: bool = True  # compare per-image, per-channel standardised images (ignore global colour/exposure)

    def __post_init__(self):
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ConfigError(f"loss scales {self.scales} must be fractions in (0, 1]", "for example (1.0, 0.5, 0.25)")
        if not 0 <= self.ssim_alpha <= 1:
            raise ConfigError(f"ssim_alpha {self.ssim_alpha} must be in [0, 1]")


def pyramid(x: torch.Tensor, scales) -> list[torch.Tensor]:
    """Anti-aliased downsampled copies (area averaging) of (B, C, H, W) at each scale."""
    H, W = x.shape[-2:]
    return [x if s == 1 else F.interpolate(x, size=(max(1, round(H * s)), max(1, round(W * s))), mode="area")
            for s in scales]


def ssim(x: torch.Tensor, y: torch.Tensor, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H, W) over 3x3 windows (reflection padded), images in [0, 1]."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mx, my = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    vx = F.avg_pool2d(x * x, 3, 1) - mx ** 2
    vy = F.avg_pool2d(y * y, 3, 1) - my ** 2
    cov = F.avg_pool2d(x * y, 3, 1) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def photometric(pred: torch.Tensor, target: torch.Tensor, ssim_alpha: float = 0.0) -> torch.Tensor:
    """(1 − α) L1 + α (1 − SSIM)/2 per sample (B,)."""
    l1 = (pred - target).abs().flatten(1).mean(1)
    if ssim_alpha <= 0:
        return l1
    d = ((1 - ssim(pred, target)) / 2).clamp(0, 1).flatten(1).mean(1)
    return (1 - ssim_alpha) * l1 + ssim_alpha * d


def standardise(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Each image's channels (B, C, H, W) shifted to mean 0 and scaled to std 1 (std
    clamped below at ``eps``), then brought back to the scale of a typical image (× 0.25)."""
    mean = x.mean((2, 3), keepdim=True)
    std = x.std((2, 3), keepdim=True).clamp_min(eps)
    return (x - mean) / std * 0.25


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, cfg: RecLossConfig = RecLossConfig(),
                        perceptual: "PerceptualLoss | None" = None, reduction: str = "mean") -> torch.Tensor:
    """L_rec between reconstructions and driving images (B, 3, S, S); ``reduction='none'``
    gives one value per sample."""
    if cfg.normalise:
        pred, target = standardise(pred), standardise(target)
    per = sum(photometric(p, t, cfg.ssim_alpha) for p, t in zip(pyramid(pred, cfg.scales),
                                                                 pyramid(target, cfg.scales))) / len(cfg.scales)
    if perceptual is not None:
        per = per + cfg.vgg_weight * perceptual(pred, target)
    return per.mean() if reduction == "mean" else per


class PerceptualLoss(nn.Module):
    """FOMM's perceptual pyramid with a frozen VGG-19 from a **local** state_dict: L1 between
    the relu1_1 .. relu4_1 features of prediction and target at every pyramid scale, per
    sample (B,)."""

    def __init__(self, vgg_weights: str, scales=(1.0, 0.5, 0.25)):
        super().__init__()
        from ..models.style_net import _vgg_levels

        self.levels = _vgg_levels(vgg_weights, 4)
        self.scales = tuple(scales)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen
        return super().train(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = pred.new_zeros(pred.shape[0])
        for p, t in zip(pyramid(pred, self.scales), pyramid(target, self.scales)):
            x, y = (p - self.mean) / self.std, (t - self.mean) / self.std
            for level in self.levels:
                x, y = level(x), level(y)
                total = total + (x - y.detach()).abs().flatten(1).mean(1)
        return total / len(self.scales)


def build_perceptual(cfg: RecLossConfig) -> PerceptualLoss | None:
    """The perceptual term when ``cfg.vgg_weights`` names a file, else ``None`` (photometric
    only; a missing file is an error naming it)."""
    return PerceptualLoss(cfg.vgg_weights, cfg.scales) if cfg.vgg_weights else None


def equivariance_loss(keypoint_fn, images: torch.Tensor, keypoints_px: torch.Tensor, affine_px: torch.Tensor) -> torch.Tensor:
    """FOMM's equivariance (affine part): keypoints predicted on τ(I) should be τ applied to
    the keypoints of I. ``keypoint_fn`` maps images to (B, K, 2) pixels; ``affine_px``
    (B, 2, 3) is τ in pixels; the error is the mean L1 in units of the image side."""
    from ..data.transforms import warp_images, warp_keypoints

    moved = keypoint_fn(warp_images(images, affine_px, padding_mode="reflection"))
    return (moved - warp_keypoints(keypoints_px, affine_px)).abs().mean() / images.shape[-1]
