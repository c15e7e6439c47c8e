"""The geometric reconstruction networks: warping module W and generator G (supplementary §A).

**W** (:class:`WarpingModule`) — "an hourglass with five conv 3×3 - bn - relu - pool 2×2 in
the encoders and five upsample 2×2 - conv 3×3 - bn - relu blocks in the decoders. After the
hourglass, there are two convs to respectively generate mask and inpainting map C. The mask
is used to generate region-wise displacement field D." It works at a reduced resolution
(``w_size``; 64 for 256 px images). Its input is, per region, the base image warped by that
region's transform and the driving-minus-base limb heatmap (FOMM's dense motion network, with
the regions given by the pose net's semantic keypoints rather than learned ones).

**G** (:class:`Generator`) — "the Johnson architecture with two down-sampling blocks, six
residual blocks and two up-sampling blocks … The inputs are the base image, displacement
field, and inpainting map." The same paragraph also calls G "based on U-Net with five conv
3×3 - bn - relu - avg pool 2×2 blocks in the encoders and five upsample … blocks in the
decoders"; the two descriptions conflict. Our reading: Johnson is the default
(``g_arch="johnson"``, as in FOMM, which "[7]" most likely is); ``g_arch="unet"`` builds the
U-Net reading (an hourglass over the warped base image, C and D).

Our choices where the paper is silent (each a field of :class:`ReconConfig`):

* **Mask prior** (``mask_prior``, ``mask_range``): W's mask logits, bounded to ±``mask_range``,
  are added to keypoint-distance logits of the driving bones
  (:func:`~srpose_lib.recon.geometry.mask_prior_logits`), so at initialisation the mask is the
  analytic nearest-bone mask and W learns corrections (depth order where limbs overlap,
  boundaries) but cannot erase a limb. A free W trained on keypoints that are often wrong
  learns to give every pixel to the background and then the reconstruction loss carries no
  keypoint signal (measured here with ``mask_prior=0``).
* **Skip blending** (``g_skips``, ``blend_output``; MRAA): G's encoder features are warped by
  D at every resolution and blended C·warped + (1 − C)·decoded, and the output is
  Î = C ⊙ warp(I_b, D) + (1 − C) ⊙ G_out: a sharp pixel path for keypoint gradients, and C
  is literally the inpainting map.
* **Normalisation** (``norm``): BatchNorm as the supplementary says for full-size runs;
  GroupNorm for the CPU sizes, whose tiny batches make BatchNorm's train/eval gap large.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..recon import geometry as geo
from ..skeletons import Skeleton

NORMS = ("batch", "group", "none")
GENERATORS = ("johnson", "unet")


@dataclass(frozen=True)
class ReconConfig:
    """Architecture of W and G. Defaults: the CPU size; :func:`srpose_lib.presets.recon_config` gives the run modes' sizes."""

    motion_model: str = "bone_similarity"  # bone_similarity | translation (FOMM zeroth order)
    background: str = "crop"  # crop (known crop-to-crop motion, else global) | global (all keypoints) | identity
    limb_sigma: float = 0.12  # limb heatmap / mask-prior width, normalised units (2 = image side)
    mask_prior: float = 1.0  # weight of the keypoint-distance prior in W's mask logits (0: W alone)
    mask_temperature: float = 0.1  # temperature of the prior (small = sharp regions)
    mask_range: float = 4.0  # W's own mask logits are bounded to ±mask_range (0: unbounded)
    w_size: int = 16  # resolution W works at (supplementary-sized: the image side / 4)
    w_blocks: int = 3  # hourglass depth (supplementary: 5)
    w_base: int = 16  # hourglass channels after the first block / 2
    w_max: int = 64  # channel cap (full: 512)
    g_arch: str = "johnson"  # johnson | unet
    g_base: int = 16  # generator channels at full resolution (full: 64)
    g_max: int = 64  # channel cap (full: 256)
    g_down: int = 2  # Johnson down/up-sampling blocks (U-Net: hourglass depth w_blocks + 2)
    g_res_blocks: int = 2  # Johnson residual blocks (supplementary: 6)
    g_skips: bool = True  # warp and blend encoder skips (MRAA)
    blend_output: bool = True  # output C ⊙ warp(I_b, D) + (1 − C) ⊙ G_out
    norm: str = "group"  # batch (supplementary) | group (small CPU batches) | none

    def __post_init__(self):
        geo.check_choice(self.motion_model, geo.MOTION_MODELS, "motion_model")
        geo.check_choice(self.background, geo.BACKGROUNDS, "background")
        geo.check_choice(self.norm, NORMS, "norm")
        geo.check_choice(self.g_arch, GENERATORS, "g_arch")
        if self.w_size % (2 ** self.w_blocks):
            raise ConfigError(f"w_size {self.w_size} is not divisible by 2**w_blocks = {2 ** self.w_blocks}",
                              "choose w_size and w_blocks so that the hourglass halves evenly")
        if self.limb_sigma <= 0 or self.mask_temperature <= 0:
            raise ConfigError("limb_sigma and mask_temperature must be positive")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if channels % g == 0), channels)
    return nn.Identity()


def _conv_block(cin: int, cout: int, norm: str, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), _norm(norm, cout), nn.ReLU(inplace=True))


class Hourglass(nn.Module):
    """U-Net-style hourglass: ``blocks`` × [conv3x3-norm-relu-pool2x2] down, the same number
    of [upsample2x-conv3x3-norm-relu] up, each up-block's output concatenated with the
    encoder feature of its resolution; the output is the last decoder feature concatenated
    with the input (``out_channels = base + in_channels``)."""

    def __init__(self, in_channels: int, blocks: int, base: int, max_channels: int, norm: str, pool: str = "max"):
        super().__init__()
        ch = [base] + [min(max_channels, base * 2 ** (i + 1)) for i in range(blocks)]
        cin = [in_channels] + ch[1:blocks]
        self.down = nn.ModuleList(_conv_block(cin[i], ch[i + 1], norm) for i in range(blocks))
        self.up = nn.ModuleList(_conv_block(ch[i + 1] * (1 if i == blocks - 1 else 2), ch[i], norm)
                                for i in range(blocks))
        self.pool = F.max_pool2d if pool == "max" else F.avg_pool2d
        self.out_channels = base + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.down:
            skips.append(self.pool(block(skips[-1]), 2))
        y = skips.pop()
        for i in reversed(range(len(self.up))):
            y = self.up[i](F.interpolate(y, scale_factor=2, mode="nearest"))
            y = torch.cat([y, skips.pop()], 1)
        return y


class WarpingModule(nn.Module):
    """W: (base image, base and driving keypoints) -> region masks, inpainting map C and the
    region transforms. Keypoints are normalised (B, K, 2) (:mod:`srpose_lib.recon.geometry`)."""

    def __init__(self, cfg: ReconConfig, skeleton: Skeleton):
        super().__init__()
        self.cfg = cfg
        self.skeleton = skeleton
        self.regions = 1 + len(skeleton.bones)
        self.hourglass = Hourglass(4 * self.regions, cfg.w_blocks, cfg.w_base, cfg.w_max, cfg.norm, pool="max")
        self.mask_head = nn.Conv2d(self.hourglass.out_channels, self.regions, 7, padding=3)
        self.c_head = nn.Conv2d(self.hourglass.out_channels, 1, 7, padding=3)
        nn.init.zeros_(self.mask_head.weight)  # start from the analytic (prior) mask
        nn.init.zeros_(self.mask_head.bias)

    def forward(self, base: torch.Tensor, p_base: torch.Tensor, p_driving: torch.Tensor,
                background: torch.Tensor | None = None, identity: bool = False, out_size: int | None = None) -> dict:
        """Masks (B, R, out, out) and C (B, 1, out, out) at ``out_size`` (default: the
        image side). W's own logits are upsampled from ``w_size``; the keypoint prior is
        evaluated at the output resolution, so masks stay sharp even when W works coarsely.
        ``background`` (B, 2, 3): the known crop-to-crop motion, normalised (NaN where
        unknown); ``identity``: every region transform the identity (the diagnostics'
        reference)."""
        cfg, sk = self.cfg, self.skeleton
        B, S = base.shape[0], base.shape[-1]
        out = out_size or S
        h = cfg.w_size
        if identity:
            T = geo.identity_transforms(B, self.regions, base.device, base.dtype)
        else:
            T = geo.region_transforms(p_base, p_driving, sk, cfg.motion_model, cfg.background,
                                      min_bone=2.0 / (S - 1), background_affine=background)
        grid = geo.coordinate_grid(h, h, base.device, base.dtype)
        sparse = geo.apply_transforms(T, grid)  # (B, R, h, h, 2)
        small = geo.resize(base, h)
        R = self.regions
        warped = geo.sample(small[:, None].expand(B, R, *small.shape[1:]).reshape(B * R, -1, h, h),
                            sparse.reshape(B * R, h, h, 2)).view(B, R, -1, h, h)
        heat = (geo.limb_heatmaps(p_driving, sk, h, h, cfg.limb_sigma)
                - geo.limb_heatmaps(p_base, sk, h, h, cfg.limb_sigma))
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], 1)[:, :, None]
        feat = self.hourglass(torch.cat([warped, heat], 2).view(B, 4 * R, h, h))
        logits = self.mask_head(feat)
        if cfg.mask_range > 0:  # W refines the keypoint prior; it cannot erase a limb
            logits = cfg.mask_range * torch.tanh(logits / cfg.mask_range)
        logits = geo.resize(logits, out)
        if cfg.mask_prior:
            prior = geo.mask_prior_logits(p_driving, sk, out, out, cfg.limb_sigma)
            logits = logits + cfg.mask_prior * prior / cfg.mask_temperature
        return {"mask": F.softmax(logits, 1), "occlusion": geo.resize(torch.sigmoid(self.c_head(feat)), out),
                "transforms": T, "sparse_warped": warped}


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(_norm(norm, ch), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, padding=1),
                                  _norm(norm, ch), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """G: (base image, displacement field D (B, S, S, 2), inpainting map C (B, 1, S, S)) ->
    G_out (B, 3, S, S) in [0, 1]; see the module docstring for the two readings."""

    def __init__(self, cfg: ReconConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.g_arch == "unet":
            self.unet = Hourglass(6, cfg.w_blocks + 2, cfg.g_base, cfg.g_max, cfg.norm, pool="avg")
            self.final = nn.Conv2d(self.unet.out_channels, 3, 7, padding=3)
            return
        ch = [min(cfg.g_max, cfg.g_base * 2 ** i) for i in range(cfg.g_down + 1)]
        self.first = _conv_block(3, ch[0], cfg.norm, kernel=7)
        self.down = nn.ModuleList(_conv_block(ch[i], ch[i + 1], cfg.norm) for i in range(cfg.g_down))
        self.res = nn.Sequential(*[_ResBlock(ch[-1], cfg.norm) for _ in range(cfg.g_res_blocks)])
        self.up = nn.ModuleList(_conv_block(ch[i + 1], ch[i], cfg.norm) for i in reversed(range(cfg.g_down)))
        self.final = nn.Conv2d(ch[0], 3, 7, padding=3)

    def forward(self, base: torch.Tensor, field: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
        if self.cfg.g_arch == "unet":
            S = base.shape[-1]
            flow = (field - geo.coordinate_grid(S, S, base.device, base.dtype)).permute(0, 3, 1, 2)
            x = torch.cat([geo.sample(base, field), occlusion, flow], 1)
            return torch.sigmoid(self.final(self.unet(x)))

        def warp_blend(feat, decoded=None):
            size = feat.shape[-1]
            warped = geo.sample(feat, geo.resize_grid(field, size))
            c = geo.resize(occlusion, size)
            return c * warped if decoded is None else c * warped + (1 - c) * decoded

        skips = [self.first(base)]
        for block in self.down:
            skips.append(F.avg_pool2d(block(skips[-1]), 2))
        x = self.res(warp_blend(skips.pop()))
        for block in self.up:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"))
            skip = skips.pop()
            x = warp_blend(skip, x) if self.cfg.g_skips else x
        return torch.sigmoid(self.final(x))


class Reconstructor(nn.Module):
    """W + G: reconstruct the driving image from the base image and both keypoint sets.

    ``forward(base, p_base, p_driving, background=None, identity=False)`` with images
    (B, 3, S, S) in [0, 1], keypoints (B, K, 2) in **image pixels** and optionally the known
    crop-to-crop motion ``background`` (B, 2, 3), pixels, driving -> base (NaN rows where
    unknown; see :func:`srpose_lib.adapt.geometric.crop_motion`) returns a dict: ``prediction`` Î_d, ``warped``
    warp(I_b, D), ``generated`` G_out, ``mask`` (B, R, h, h), ``occlusion`` C (B, 1, S, S),
    ``field`` D (B, S, S, 2) and ``transforms`` (B, R, 2, 3)."""

    def __init__(self, cfg: ReconConfig, skeleton: Skeleton):
        super().__init__()
        self.cfg = cfg
        self.skeleton = skeleton
        self.warping = WarpingModule(cfg, skeleton)
        self.generator = Generator(cfg)

    def forward(self, base: torch.Tensor, p_base: torch.Tensor, p_driving: torch.Tensor,
                background: torch.Tensor | None = None, identity: bool = False) -> dict:
        S = base.shape[-1]
        if S % self.cfg.w_size:
            raise ConfigError(f"image side {S} is not a multiple of w_size {self.cfg.w_size}",
                              "set recon.w_size to the image side / 2 or / 4")
        pb, pd = geo.to_normalised(p_base, S), geo.to_normalised(p_driving, S)
        bg = None if background is None else geo.pixel_affine_to_normalised(background, S)
        out = self.warping(base, pb, pd, bg, identity)
        field = geo.displacement_field(out["mask"], out["transforms"])
        occlusion = out["occlusion"]
        warped = geo.sample(base, field)
        generated = self.generator(base, field, occlusion)
        pred = occlusion * warped + (1 - occlusion) * generated if self.cfg.blend_output else generated
        return {**out, "prediction": pred, "warped": warped, "generated": generated, "field": field,
                "occlusion": occlusion}


def build_reconstructor(cfg: ReconConfig, skeleton: Skeleton) -> Reconstructor:
    return Reconstructor(cfg, skeleton)

