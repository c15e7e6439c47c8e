"""Region-wise geometry of the reconstruction module (supplementary §A; design after FOMM/MRAA).

Keypoints predicted on a base and a driving image of the same subject define, for every
**region**, a transform that says where a driving pixel comes from in the base image. The
warping module W (:mod:`srpose_lib.models.reconstruction`) mixes them with its soft mask into
one displacement field D.

**Conventions** (fixed here, tested once):

* keypoints ``(B, K, 2)`` are (x, y) = (column, row) in image pixels, pixel centres at
  integers (:mod:`srpose_lib.keypoints`); geometry works in normalised coordinates
  ``u = 2 x / (S - 1) - 1``, the convention of ``grid_sample(..., align_corners=True)``,
  which every sampling call here passes explicitly;
* transforms are **backward**: ``T_r(z)`` maps a driving-frame location z to the base-frame
  location to sample (what ``grid_sample`` needs);
* regions: ``r = 0`` is the background, ``r = 1..E`` one per bone (parent, child) of the
  skeleton, in ``Skeleton.bones`` order.

**Per-region transform** (closed form, no SVD, no inverse): for a point set with driving
points x_i and base points y_i, centroids μ_d, μ_b and centred x̃_i, ỹ_i,

    n = Σ|x̃_i|²,  a = Σ x̃_i·ỹ_i / n,  c = Σ x̃_i × ỹ_i / n,  A = [[a, −c], [c, a]],
    T(z) = μ_b + A (z − μ_d),

the least-squares 2D similarity. For a bone (two points) it is the complex ratio of the bone
vectors, v_b / v_d: exact at both endpoints. ``n`` is clamped to (1 px)² so a zero-length
bone stays finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError, did_you_mean
from ..keypoints import pixel_to_normalized
from ..skeletons import Skeleton

MOTION_MODELS = ("bone_similarity", "translation")
BACKGROUNDS = ("crop", "global", "identity")


def coordinate_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised (x, y) coordinates (h, w, 2) of the pixel centres of an h × w image, as
    ``grid_sample(align_corners=True)`` reads them: corners at ±1."""
    ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)


def sample(images: torch.Tensor, grid: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """``grid_sample`` with the project's convention (bilinear, ``align_corners=True``)."""
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode=padding_mode,
                         align_corners=True)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased resize of (B, C, H, W) to (size, size): area averaging when shrinking,
    bilinear (``align_corners=True``) when growing."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


def resize_grid(grid: torch.Tensor, size: int) -> torch.Tensor:
    """A sampling grid (B, H, W, 2) of normalised coordinates at another resolution."""
    return resize(grid.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------- transforms


def similarity(driving: torch.Tensor, base: torch.Tensor, min_norm: float = 0.0,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares similarities from point sets (..., N, 2) of the driving frame to the
    base frame, as affines (..., 2, 3): ``T(z) = A z + t`` (see the module docstring).

    ``min_norm`` clamps n = Σ w|x̃|² from below (in the points' squared units);
    ``weights`` (..., N) >= 0 weight the points (default all ones)."""
    if weights is None:
        weights = torch.ones(driving.shape[:-1], dtype=driving.dtype, device=driving.device)
    w = weights[..., None]
    total = w.sum(-2).clamp_min(1e-12)
    mu_d = (w * driving).sum(-2) / total
    mu_b = (w * base).sum(-2) / total
    x = driving - mu_d[..., None, :]
    y = base - mu_b[..., None, :]
    n = (w[..., 0] * x.pow(2).sum(-1)).sum(-1).clamp_min(min_norm)
    a = (w[..., 0] * (x * y).sum(-1)).sum(-1) / n
    c = (w[..., 0] * (x[..., 0] * y[..., 1] - x[..., 1] * y[..., 0])).sum(-1) / n
    A = torch.stack([torch.stack([a, -c], -1), torch.stack([c, a], -1)], -2)
    t = mu_b - (A @ mu_d[..., None])[..., 0]
    return torch.cat([A, t[..., None]], -1)


def translation(driving: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Pure translations (..., 2, 3) moving the centroid of ``driving`` (..., N, 2) onto
    that of ``base`` (FOMM's zeroth-order motion)."""
    t = base.mean(-2) - driving.mean(-2)
    eye = torch.eye(2, dtype=driving.dtype, device=driving.device).expand(*t.shape[:-1], 2, 2)
    return torch.cat([eye, t[..., None]], -1)


def region_transforms(p_base: torch.Tensor, p_driving: torch.Tensor, skeleton: Skeleton,
                      motion_model: str = "bone_similarity", background: str = "crop",
                      min_bone: float = 0.0, background_affine: torch.Tensor | None = None) -> torch.Tensor:
    """Backward transforms (B, 1 + E, 2, 3) of the background and of every bone, from
    keypoints (B, K, 2) in normalised coordinates.

    ``background``: ``crop`` (the known crop-to-crop motion ``background_affine`` (B, 2, 3),
    normalised, where it is given and finite; the global similarity elsewhere), ``global``
    (the similarity of all keypoints) or ``identity``. ``min_bone`` is the bone length
    (normalised units) below which a bone's scale stops growing (1 px: ``2 / (S - 1)``)."""
    check_choice(motion_model, MOTION_MODELS, "motion_model")
    check_choice(background, BACKGROUNDS, "background")
    parents, children = zip(*skeleton.bones)
    bone_d = torch.stack([p_driving[:, list(parents)], p_driving[:, list(children)]], -2)  # (B, E, 2, 2)
    bone_b = torch.stack([p_base[:, list(parents)], p_base[:, list(children)]], -2)
    if motion_model == "bone_similarity":
        bones = similarity(bone_d, bone_b, min_norm=0.5 * min_bone ** 2)
    else:
        bones = translation(bone_d, bone_b)
    if background == "identity":
        bg = identity_transforms(p_base.shape[0], 1, p_base.device, p_base.dtype)[:, 0]
    else:
        bg = similarity(p_driving, p_base, min_norm=min_bone ** 2)
        if background == "crop" and background_affine is not None:
            known = torch.isfinite(background_affine).all(-1).all(-1)[:, None, None]
            bg = torch.where(known, torch.nan_to_num(background_affine.to(bg.dtype)), bg)
    return torch.cat([bg[:, None], bones], 1)


def pixel_affine_to_normalised(affine_px: torch.Tensor, size: int) -> torch.Tensor:
    """A pixel affine (B, 2, 3) of an image of side ``size`` in normalised coordinates."""
    k = (size - 1) / 2.0
    lin = affine_px[:, :, :2]
    t = (affine_px[:, :, 2] + lin.sum(-1) * k - k) / k  # u' = (A (k(u+1)) + t)/k - 1
    return torch.cat([lin, t[..., None]], -1)


def identity_transforms(batch: int, regions: int, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.eye(2, 3, device=device, dtype=dtype).expand(batch, regions, 2, 3).clone()


def apply_transforms(transforms: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sparse motions: every region's transform (B, R, 2, 3) applied to a grid (h, w, 2)
    -> (B, R, h, w, 2) base-frame locations."""
    m = transforms[:, :, :, :, None, None]  # (B, R, 2, 3, 1, 1)
    gx, gy = grid[..., 0], grid[..., 1]
    out = m[:, :, :, 0] * gx + m[:, :, :, 1] * gy + m[:, :, :, 2]  # (B, R, 2, h, w)
    return out.permute(0, 1, 3, 4, 2)


def displacement_field(masks: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """D(z) = Σ_r M_r(z) T_r(z) (B, h, w, 2) from masks (B, R, h, w) that sum to 1 over r
    and transforms (B, R, 2, 3): the mask-weighted affine, evaluated on the masks' grid."""
    B, R, h, w = masks.shape
    grid = coordinate_grid(h, w, masks.device, masks.dtype)
    mix = torch.einsum("brhw,brk->bkhw", masks, transforms.reshape(B, R, 6).to(masks.dtype))
    gx, gy = grid[..., 0], grid[..., 1]
    dx = mix[:, 0] * gx + mix[:, 1] * gy + mix[:, 2]
    dy = mix[:, 3] * gx + mix[:, 4] * gy + mix[:, 5]
    return torch.stack([dx, dy], -1)


# ----------------------------------------------------------------------------- limb maps


def segment_distance2(grid: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance of every grid point (h, w, 2) to segments a→b (B, E, 2): (B, E, h, w)."""
    ab = b - a
    az = grid[None, None] - a[:, :, None, None, :]
    denom = ab.pow(2).sum(-1).clamp_min(1e-12)[:, :, None, None]
    t = ((az * ab[:, :, None, None, :]).sum(-1) / denom).clamp(0.0, 1.0)
    closest = a[:, :, None, None, :] + t[..., None] * ab[:, :, None, None, :]
    return (grid[None, None] - closest).pow(2).sum(-1)


def bone_distance2(keypoints: torch.Tensor, skeleton: Skeleton, h: int, w: int) -> torch.Tensor:
    """Squared distance (B, E, h, w) of the pixels of an h × w grid to each bone of
    normalised keypoints (B, K, 2)."""
    parents, children = zip(*skeleton.bones)
    grid = coordinate_grid(h, w, keypoints.device, keypoints.dtype)
    return segment_distance2(grid, keypoints[:, list(parents)], keypoints[:, list(children)])


def limb_heatmaps(keypoints: torch.Tensor, skeleton: Skeleton, h: int, w: int, sigma: float) -> torch.Tensor:
    """Per-bone limb heatmaps exp(−dist²/(2σ²)) (B, E, h, w) (KeypointGAN's skeleton maps)."""
    return torch.exp(-bone_distance2(keypoints, skeleton, h, w) / (2 * sigma ** 2))


def mask_prior_logits(keypoints: torch.Tensor, skeleton: Skeleton, h: int, w: int, sigma: float,
                      floor: float = -8.0) -> torch.Tensor:
    """Keypoint-driven mask logits (B, 1 + E, h, w): −dist²/(2σ²) to each driving bone
    (clamped below at ``floor``) and a constant −2 for the background (a pixel belongs to
    the background beyond two limb widths). Softmax of these divided by a temperature is
    the **analytic mask**; W adds its own logits to them (our choice, see
    :mod:`srpose_lib.models.reconstruction`)."""
    bones = (-bone_distance2(keypoints, skeleton, h, w) / (2 * sigma ** 2)).clamp_min(floor)
    bg = torch.full_like(bones[:, :1], -2.0)
    return torch.cat([bg, bones], 1)


def analytic_masks(keypoints: torch.Tensor, skeleton: Skeleton, h: int, w: int, sigma: float,
                   temperature: float = 0.1) -> torch.Tensor:
    """Region masks (B, 1 + E, h, w) from the driving keypoints alone: each pixel goes to
    its nearest bone within about two limb widths, else to the background; softmax with
    ``temperature`` (small = sharp)."""
    return F.softmax(mask_prior_logits(keypoints, skeleton, h, w, sigma) / temperature, 1)


# ----------------------------------------------------------------------------- helpers


def to_normalised(keypoints_px: torch.Tensor, size: int) -> torch.Tensor:
    """Image pixels -> normalised coordinates of an image of side ``size``."""
    return pixel_to_normalized(keypoints_px, size)


def jitter(keypoints: torch.Tensor, pixels: float, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Move every normalised keypoint (B, K, 2) by exactly ``pixels`` px in a random direction."""
    angle = torch.rand(keypoints.shape[:-1], generator=generator).to(keypoints.device) * (2 * torch.pi)
    step = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * (pixels * 2.0 / (size - 1))
    return keypoints + step.to(keypoints.dtype)


def flow_to_rgb(field: torch.Tensor, max_norm: float | None = None) -> torch.Tensor:
    """A displacement picture (3, h, w) in [0, 1] of D(z) − z (h, w, 2): hue = direction,
    saturation = magnitude (the usual optical-flow colouring)."""
    h, w = field.shape[:2]
    flow = field - coordinate_grid(h, w, field.device, field.dtype)
    mag = flow.norm(dim=-1)
    scale = max_norm or float(mag.max().clamp_min(1e-6))
    hue = (torch.atan2(flow[..., 1], flow[..., 0]) / (2 * torch.pi)) % 1.0
    sat = (mag / scale).clamp(0, 1)
    k = torch.stack([(5 + hue * 6) % 6, (3 + hue * 6) % 6, (1 + hue * 6) % 6], 0)
    return 1.0 - sat[None] * torch.minimum(k, 4 - k).clamp(0, 1)


def check_choice(value: str, options: tuple[str, ...], what: str) -> None:
    if value not in options:
        raise ConfigError(f"unknown {what} {value!r}", did_you_mean(value, options))


def analytic_warp(base: torch.Tensor, p_base: torch.Tensor, p_driving: torch.Tensor, skeleton: Skeleton,
                  sigma: float = 0.12, temperature: float = 0.1, motion_model: str = "bone_similarity",
                  background: str = "crop", background_affine: torch.Tensor | None = None) -> dict:
    """The warp with no learned part: analytic nearest-bone masks from the driving keypoints,
    region transforms, D, and the base image warped by D. Keypoints in image pixels
    (B, K, 2); returns ``warped`` (B, 3, S, S), ``mask``, ``field``, ``transforms``. The
    reference point for W (and the oracle of the keypoint-correction demo)."""
    S = base.shape[-1]
    pb, pd = to_normalised(p_base, S), to_normalised(p_driving, S)
    bg = None if background_affine is None else pixel_affine_to_normalised(background_affine, S)
    T = region_transforms(pb, pd, skeleton, motion_model, background, min_bone=2.0 / (S - 1), background_affine=bg)
    masks = analytic_masks(pd, skeleton, S, S, sigma, temperature)
    field = displacement_field(masks, T)
    return {"warped": sample(base, field), "mask": masks, "field": field, "transforms": T}
