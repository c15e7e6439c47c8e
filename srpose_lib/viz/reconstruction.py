"""Figures of the geometric reconstruction module (notebook 04): regions, warps, masks, the
inpainting map C, the displacement field D, reconstructions and the diagnostics."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..recon.geometry import flow_to_rgb
from ..skeletons import Skeleton
from . import _image, bone_colours, draw_pose


def region_colours(skeleton: Skeleton) -> np.ndarray:
    """RGB (1 + E, 3): dark grey for the background, the bone colours for the regions."""
    from matplotlib.colors import to_rgb

    return np.array([(0.15, 0.15, 0.15)] + [to_rgb(c) for c in bone_colours(skeleton)])


def region_image(mask: torch.Tensor, skeleton: Skeleton) -> np.ndarray:
    """A soft mask (R, H, W) as an image: each pixel the mask-weighted region colour."""
    cols = torch.as_tensor(region_colours(skeleton), dtype=torch.float32)
    return torch.einsum("rhw,rc->hwc", mask.detach().float().cpu(), cols).clamp(0, 1).numpy()


def reconstruction_panels(pairs: Sequence[Mapping[str, torch.Tensor]], skeleton: Skeleton,
                          size: float = 1.45) -> plt.Figure:
    """One row per pair: base (+ its keypoints), driving (+ its keypoints), regions (mask),
    D as a flow picture, warp(I_b, D), C, the reconstruction Î_d and |Î_d − I_d|.
    Each pair holds ``base``, ``driving`` (3, S, S), ``p_base``, ``p_driving`` (K, 2) and
    the network's outputs ``mask`` (R, S, S), ``field`` (S, S, 2), ``warped``,
    ``occlusion`` (1, S, S) and ``prediction``."""
    titles = ["base + p_b", "driving + p_d", "regions (mask)", "D (flow)", "warp(I_b, D)", "C (inpainting)",
              "reconstruction", "|error|"]
    fig, axes = plt.subplots(len(pairs), len(titles), figsize=(size * len(titles), size * len(pairs)), squeeze=False)
    for row, p in zip(axes, pairs):
        err = (p["prediction"] - p["driving"]).abs().mean(0)
        panels = [_image(p["base"]), _image(p["driving"]), region_image(p["mask"], skeleton),
                  flow_to_rgb(p["field"].detach().cpu()).permute(1, 2, 0).numpy(), _image(p["warped"]),
                  p["occlusion"][0].detach().cpu().numpy(), _image(p["prediction"]), err.detach().cpu().numpy()]
        for j, (ax, img) in enumerate(zip(row, panels)):
            ax.imshow(img, interpolation="nearest", cmap="gray" if img.ndim == 2 else None,
                      vmin=0, vmax=1 if j == 5 else (0.5 if j == 7 else None))
            ax.set_axis_off()
        draw_pose(row[0], p["p_base"], skeleton, linewidth=0.6, markersize=3)
        draw_pose(row[1], p["p_driving"], skeleton, linewidth=0.6, markersize=3)
    for ax, t in zip(axes[0], titles):
        ax.set_title(t, fontsize=7)
    fig.tight_layout()
    return fig


def per_region_warps(base: torch.Tensor, warped_regions: torch.Tensor, skeleton: Skeleton,
                     regions: Sequence[int], size: float = 1.5) -> plt.Figure:
    """The base image (3, S, S) warped by single region transforms (R, 3, S, S)."""
    names = ["background"] + [f"{skeleton.joint_names[p]}→{skeleton.joint_names[c]}" for p, c in skeleton.bones]
    fig, axes = plt.subplots(1, 1 + len(regions), figsize=(size * (1 + len(regions)), size * 1.15))
    axes[0].imshow(_image(base), interpolation="nearest")
    axes[0].set_title("base", fontsize=7)
    for ax, r in zip(axes[1:], regions):
        ax.imshow(_image(warped_regions[r]), interpolation="nearest")
        ax.set_title(f"T_{r}: {names[r]}", fontsize=6)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def refinement_figure(driving: torch.Tensor, truth: torch.Tensor, trace: Sequence, skeleton: Skeleton,
                      size: float = 2.6) -> plt.Figure:
    """Noisy driving keypoints pulled back by the reconstruction gradient: the image with the
    truth (white), the start (red) and the end (colours) and each joint's path; beside it
    the mean error per step. ``trace``: (step, loss, keypoints (K, 2)) tuples."""
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 0.6, size))
    ax = axes[0]
    ax.imshow(_image(driving), interpolation="nearest")
    path = torch.stack([t[2] for t in trace]).cpu()  # (T, K, 2)
    for k in range(path.shape[1]):
        ax.plot(path[:, k, 0], path[:, k, 1], "-", color="yellow", lw=0.6, alpha=0.8)
    draw_pose(ax, truth, skeleton, colour="white", linewidth=0.6, markersize=4, style="--")
    draw_pose(ax, path[0], skeleton, colour="red", linewidth=0.5, markersize=4, style=":")
    draw_pose(ax, path[-1], skeleton, linewidth=0.8, markersize=4)
    ax.set_title("truth (white), start (red), end", fontsize=7)
    ax.set_axis_off()
    steps = [t[0] for t in trace]
    err = (path - truth.cpu()[None]).norm(dim=-1).mean(-1)
    axes[1].plot(steps, err.numpy(), "o-", ms=2)
    axes[1].set_xlabel("gradient step")
    axes[1].set_ylabel("mean keypoint error (px)")
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def jitter_curves(curves: Mapping[str, Sequence[float]], jitters: Sequence[float], reference: Mapping[str, float]
                  | None = None) -> plt.Figure:
    """L_rec against the driving-keypoint jitter (px), one curve per name; optional
    horizontal lines (e.g. the identity warp) per name."""
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    xs = [0.0] + list(jitters)
    for (name, ys), col in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax.plot(xs, ys, "o-", color=col, label=name)
        if reference and name in reference:
            ax.axhline(reference[name], color=col, ls=":", lw=1)
    ax.set_xlabel("driving-keypoint jitter (px)")
    ax.set_ylabel("L_rec")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
