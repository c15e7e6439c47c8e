"""UniFrame's mean-teacher pseudo-labelling (Kim et al., ECCV 2022), the paper's Baseline.

One iteration on a target batch (UniFrame, https://arxiv.org/abs/2204.00172, code
https://github.com/VisionLearningGroup/UDA_PoseEstimation):

1. each target image gets a *base* crop and two random views of it: one for the student and
   one for the teacher (rotation, shear, translation, scale, colour jitter), with their
   affine maps, so every prediction can be brought back to the shared base frame;
2. the teacher (an exponential moving average of the student, no gradient) predicts on its
   view; its heatmaps are **warped back** to the base frame (:func:`warp_heatmaps`);
3. the **pseudo-label** is a unit-peak Gaussian at the teacher's argmax (``rectify``), kept
   only where the teacher is confident: the **mask** keeps the keypoints whose confidence
   is above the batch's ``mask_ratio`` quantile (UniFrame: the median);
4. **occlusion**: confident keypoints are hidden in the student's view under a patch copied
   from elsewhere in the same image, with probability ``occlude_rate``;
5. the student learns from source labels plus ``lambda_c`` × the masked consistency with
   the pseudo-labels; then the teacher takes ``ema`` × itself + (1 - ``ema``) × the student.

Everything is batched on the device: affine maps, warps, Gaussians and occlusion patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.heatmaps import gaussian_targets
from ..data.transforms import (affine_matrix, color_jitter, compose_affine, invert_affine,
                               rescale_affine, warp_images, warp_keypoints)
from ..keypoints import argmax_2d
from ..train.distributed import Rows


@dataclass(frozen=True)
class ViewConfig:
    """Random views of a target image (UniFrame's defaults at 256 px)."""

    base_scale: tuple[float, float] = (0.6, 1.3)  # RandomResizedCrop of the base frame
    rotation: float = 180.0  # ±degrees (UniFrame: 180 hands, 60 bodies)
    shear: float = 30.0  # shear along x, ±degrees
    translate: float = 0.05  # fraction of the image side
    scale: tuple[float, float] = (0.6, 1.3)
    color_jitter: float = 0.25


@dataclass(frozen=True)
class MeanTeacherConfig:
    """UniFrame's mean-teacher knobs with its published values as defaults."""

    ema: float = 0.999  # teacher <- ema * teacher + (1 - ema) * student (parameters only)
    lambda_c: float = 1.0  # weight of the consistency loss
    mask_ratio: float = 0.5  # keep keypoints above this quantile of the batch's confidences
    occlude_rate: float = 0.5  # probability of occluding a confident keypoint per image
    occlude_thresh: float = 0.9  # confidence a keypoint needs to be occluded
    occlude_size: float = 10.0  # half-size of the occluding patch, px at 256 px
    teacher_views: int = 1  # UniFrame's k
    student: ViewConfig = ViewConfig()
    teacher: ViewConfig = ViewConfig()


# ----------------------------------------------------------------------------- views


def random_view(n: int, cfg: ViewConfig, size: int, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """Random view affines (n, 2, 3) in pixels: rotation, x-shear, scale and shift about
    the image centre."""
    def u(lo, hi, shape=(n,)):
        return lo + (hi - lo) * torch.rand(shape, generator=generator)

    m = affine_matrix(u(-cfg.rotation, cfg.rotation), torch.exp(u(math.log(cfg.scale[0]), math.log(cfg.scale[1]))),
                      u(-cfg.translate, cfg.translate, (n, 2)) * size, torch.zeros(n, dtype=torch.bool),
                      size, shear=u(-cfg.shear, cfg.shear))
    return m if device is None else m.to(device)


def random_base_crop(n: int, scale: tuple[float, float], size: int,
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """The base frame: a square crop covering ``scale`` × the image side (zooming in for
    scale < 1, out for > 1) at a random position that keeps its centre in the image."""
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    zoom = 1.0 / s
    max_shift = (1.0 - s).abs() * size / 2 * zoom
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift[:, None]
    m = affine_matrix(torch.zeros(n), zoom, shift, torch.zeros(n, dtype=torch.bool), size)
    return m if device is None else m.to(device)


def warp_heatmaps(heatmaps: torch.Tensor, affine_px: torch.Tensor, stride: float) -> torch.Tensor:
    """Warp heatmaps (B, K, h, w) by an image-pixel affine (B, 2, 3) (cell j = pixel
    ``stride * j``); regions mapped from outside the map are zero."""
    return warp_images(heatmaps, rescale_affine(affine_px, stride))


# ----------------------------------------------------------------------------- teacher


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, alpha: float) -> None:
    """Mean teacher: ``teacher <- alpha * teacher + (1 - alpha) * student`` on the
    parameters only; BatchNorm buffers are not averaged (UniFrame's ``OldWeightEMA``)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)


def confidence(heatmaps: torch.Tensor, loss: str, sigma: float) -> torch.Tensor:
    """Per-keypoint confidence (B, K) in comparable units: the heatmap's maximum for MSE
    nets (unit-peak targets), and for KL nets the spatial-softmax maximum divided by the
    peak of a normalised target Gaussian, so a perfect match reads 1 in both cases."""
    if loss == "mse":
        return heatmaps.flatten(2).amax(-1)
    peak = 1.0 / _gaussian_mass(sigma)
    return F.softmax(heatmaps.flatten(2).float(), -1).amax(-1) / peak


def _gaussian_mass(sigma: float) -> float:
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * sigma**2))
    return float(g.sum())


def confidence_mask(conf: torch.Tensor, ratio: float) -> torch.Tensor:
    """UniFrame's mask: keypoints whose confidence is strictly above the k-th smallest of
    the batch, k = int(ratio × B × K) (the batch median for ratio 0.5)."""
    k = int(ratio * conf.numel())
    if k < 1:
        return torch.ones_like(conf, dtype=torch.bool)
    thresh = conf.flatten().kthvalue(k).values
    return conf > thresh


def rectify(coords_cells: torch.Tensor, heatmap_size: int, sigma: float, stride: float,
            valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-label heatmaps: unit-peak Gaussians (the baselines' target rule) at keypoint
    cells (B, K, 2). Returns (heatmaps, weights); weight 0 where the cell is off the grid."""
    vis = torch.ones(coords_cells.shape[:-1], device=coords_cells.device) if valid is None else valid.float()
    return gaussian_targets(coords_cells * stride, vis, int(heatmap_size * stride), heatmap_size, sigma)


# ----------------------------------------------------------------------------- occlusion


def occlude(images: torch.Tensor, centres_px: torch.Tensor, candidates: torch.Tensor, rate: float,
            half_size: int, generator: torch.Generator | None = None,
            rows: Rows | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide one confident keypoint per image under a patch copied from elsewhere in the
    same image (UniFrame's adaptive occlusion), with probability ``rate`` per image that has
    a candidate. ``centres_px`` (B, K, 2) keypoints in the images' pixels; ``candidates``
    (B, K) bool. Returns the images and which ones were occluded (B,).

    ``rows`` (under torchrun, train/distributed.py): ``images`` are this rank's rows of a
    global batch; every draw is made for the global batch and the rank keeps its rows, and
    the draws after the first are skipped only when no rank occludes anything."""
    B, _, H, W = images.shape

    def draw(*rest: int) -> torch.Tensor:  # per image, in call order
        r = torch.rand((B, *rest), generator=generator) if rows is None else rows.rand(*rest, generator=generator)
        return r.to(images.device)

    has = candidates.any(1)
    chosen = has & (draw() < rate)
    if not (chosen.any() if rows is None else rows.any(chosen)):
        return images, chosen
    # pick one candidate keypoint per image uniformly
    scores = draw(candidates.shape[1])
    k = torch.where(candidates, scores, torch.full_like(scores, -1.0)).argmax(1)
    centre = centres_px[torch.arange(B), k].round().long()  # (B, 2)
    x0 = (centre[:, 0] - half_size).clamp(0, W - 1)
    y0 = (centre[:, 1] - half_size).clamp(0, H - 1)
    x1 = (centre[:, 0] + half_size).clamp(1, W)
    y1 = (centre[:, 1] + half_size).clamp(1, H)
    # a same-size source patch at a random position
    sx = (draw() * (W - (x1 - x0) + 1)).floor().long()
    sy = (draw() * (H - (y1 - y0) + 1)).floor().long()
    xs = torch.arange(W, device=images.device)
    ys = torch.arange(H, device=images.device)
    in_x = (xs[None] >= x0[:, None]) & (xs[None] < x1[:, None])
    in_y = (ys[None] >= y0[:, None]) & (ys[None] < y1[:, None])
    window = (in_y[:, :, None] & in_x[:, None, :]) & chosen[:, None, None]  # (B, H, W)
    src_x = (xs[None] - x0[:, None] + sx[:, None]).clamp(0, W - 1)  # (B, W)
    src_y = (ys[None] - y0[:, None] + sy[:, None]).clamp(0, H - 1)  # (B, H)
    flat = (src_y[:, :, None] * W + src_x[:, None, :]).view(B, 1, -1).expand(-1, images.shape[1], -1)
    patch = images.flatten(2).gather(2, flat).view_as(images)
    return torch.where(window[:, None], patch, images), chosen


def consistency_loss(student: torch.Tensor, pseudo: torch.Tensor, mask: torch.Tensor, loss: str) -> torch.Tensor:
    """Masked consistency between student heatmaps and pseudo-labels (B, K, h, w).

    ``mse``: UniFrame's ``ConsLoss``, the squared difference times the mask, averaged over
    joints, then pixels and batch. ``kl``: the spatial-softmax KL loss of the supervised
    stage with the mask as joint weights (for nets trained with RegDA's loss)."""
    mask = mask.float()
    if loss == "mse":
        diff = (student.float() - pseudo) * mask[:, :, None, None]
        return (diff**2).mean(1).mean()
    from ..train.losses import JointsKLLoss

    return JointsKLLoss()(student.float(), pseudo, mask)


# ----------------------------------------------------------------------------- one batch


@dataclass
class TargetViews:
    """A target batch seen through the base frame, the student view and k teacher views."""

    student: torch.Tensor  # (B, 3, S, S) student input
    teachers: list[torch.Tensor]  # k × (B, 3, S, S) teacher inputs
    base_to_student: torch.Tensor  # (B, 2, 3) pixel affines from the base frame
    base_to_teacher: list[torch.Tensor]
    original_to_base: torch.Tensor  # (B, 2, 3) from the original crop to the base frame

    def select(self, rows: slice) -> "TargetViews":
        """The views of the images ``rows`` (a rank's rows of a global batch)."""
        return TargetViews(self.student[rows], [t[rows] for t in self.teachers], self.base_to_student[rows],
                           [m[rows] for m in self.base_to_teacher], self.original_to_base[rows])


def make_views(images: torch.Tensor, cfg: MeanTeacherConfig, generator: torch.Generator | None = None) -> TargetViews:
    """Base frame + views of ``images`` (B, 3, S, S) in [0, 1], each warped once from the
    original image (the base frame itself is never resampled)."""
    B, S = images.shape[0], images.shape[-1]
    dev = images.device
    base = random_base_crop(B, cfg.student.base_scale, S, generator, dev)
    to_student = random_view(B, cfg.student, S, generator, dev)
    student = color_jitter(warp_images(images, compose_affine(to_student, base)), cfg.student.color_jitter, generator)
    to_teachers, teachers = [], []
    for _ in range(cfg.teacher_views):
        m = random_view(B, cfg.teacher, S, generator, dev)
        to_teachers.append(m)
        teachers.append(color_jitter(warp_images(images, compose_affine(m, base)), cfg.teacher.color_jitter, generator))
    return TargetViews(student, teachers, to_student, to_teachers, base)


def teacher_in_base_frame(teacher_heatmaps: list[torch.Tensor], views: TargetViews, stride: float,
                          loss: str = "mse") -> torch.Tensor:
    """Teacher heatmaps of every view warped back to the base frame and averaged.

    ``mse`` heatmaps are values: what the view did not see reads 0. ``kl`` outputs are
    spatial-softmax logits, where 0 is not "nothing" — padding them with 0 gives the unseen
    border a probability that can outweigh the keypoint. They are warped as probabilities
    (the softmax, zero outside the view, i.e. logit −inf) and returned as log-probabilities
    (floored at ``log(1e-30)``), averaged over the views like logits."""
    if loss == "mse":
        back = [warp_heatmaps(h.float(), invert_affine(m), stride)
                for h, m in zip(teacher_heatmaps, views.base_to_teacher)]
        return torch.stack(back).mean(0)
    back = []
    for h, m in zip(teacher_heatmaps, views.base_to_teacher):
        B, K, hh, ww = h.shape
        prob = F.softmax(h.float().flatten(2), -1).view(B, K, hh, ww)
        back.append(warp_heatmaps(prob, invert_affine(m), stride).clamp_min(1e-30).log())
    return torch.stack(back).mean(0)


def student_targets(base_coords_cells: torch.Tensor, views: TargetViews, heatmap_size: int,
                    sigma: float, stride: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-label heatmaps in the student's view: the base-frame keypoints moved by the
    student's affine, then rendered as unit-peak Gaussians (weight 0 when they leave the
    view). Our choice: UniFrame instead warps the student's heatmaps back to the base frame;
    rendering the label in the student frame compares the same thing without resampling
    the student's output (which blurs it, and for spatial-softmax outputs would need a
    -inf padding)."""
    xy_px = warp_keypoints(base_coords_cells * stride, views.base_to_student)
    return rectify(xy_px / stride, heatmap_size, sigma, stride)
