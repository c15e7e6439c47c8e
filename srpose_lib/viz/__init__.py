"""Figures for the notebooks. Every function returns a matplotlib Figure (and never shows
or closes it), so notebooks can display, save and test them alike.

Images may be uint8 (N, 3, H, W) or float in [0, 1]; keypoints (N, K, 2) in pixels.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..skeletons import Skeleton

_FINGER_COLOURS = ["#e6194b", "#f58231", "#ffe119", "#3cb44b", "#4363d8"]
_LEFT, _RIGHT, _CENTRE = "#4cc9f0", "#f72585", "#ffd166"


def set_style() -> None:
    """The plotting style of the notebooks."""
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "axes.titlesize": 9,
        "axes.spines.top": False, "axes.spines.right": False, "figure.max_open_warning": 50,
    })


def _image(img) -> np.ndarray:
    x = torch.as_tensor(img)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def bone_colours(skeleton: Skeleton) -> list[str]:
    """One colour per bone: fingers for hands, left/right/centre for bodies."""
    out = []
    for parent, child in skeleton.bones:
        if skeleton.name == "hand21":
            out.append(_FINGER_COLOURS[(child - 1) // 4])
        else:
            name = skeleton.joint_names[child]
            out.append(_LEFT if name.startswith("l_") else _RIGHT if name.startswith("r_") else _CENTRE)
    return out


def draw_pose(ax, keypoints, skeleton: Skeleton, visible=None, colour: str | None = None,
              linewidth: float = 1.5, markersize: float = 12, style: str = "-") -> None:
    """Draw a 2D skeleton on ``ax``; occluded joints (``visible`` False) as hollow rings."""
    kp = torch.as_tensor(keypoints).detach().cpu().numpy()
    vis = np.ones(len(kp), bool) if visible is None else torch.as_tensor(visible).cpu().numpy() > 0.5
    for (p, c), col in zip(skeleton.bones, bone_colours(skeleton)):
        ax.plot(kp[[p, c], 0], kp[[p, c], 1], style, color=colour or col, lw=linewidth, alpha=0.9)
    ax.scatter(kp[vis, 0], kp[vis, 1], s=markersize, c=colour or "white", edgecolors="black",
               linewidths=0.5, zorder=3)
    ax.scatter(kp[~vis, 0], kp[~vis, 1], s=markersize, facecolors="none",
               edgecolors=colour or "red", linewidths=1.0, zorder=3)


def _image_grid(images, ncols: int, size: float):
    """A figure with one axis per image (images drawn, axes hidden); returns the used axes."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    used = list(axes.flat)[:n]
    for ax, img in zip(used, images):
        ax.imshow(_image(img), interpolation="nearest")
    return fig, used


def show_samples(images, keypoints=None, skeleton: Skeleton | None = None, visible=None,
                 titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
                 suptitle: str | None = None) -> plt.Figure:
    """A grid of images, optionally with their skeletons."""
    fig, axes = _image_grid(images, ncols, size)
    for i, ax in enumerate(axes):
        if keypoints is not None and skeleton is not None:
            draw_pose(ax, keypoints[i], skeleton, None if visible is None else visible[i],
                      linewidth=1.0, markersize=6)
        if titles is not None:
            ax.set_title(titles[i])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def domains_side_by_side(splits: Mapping[str, object], indices: Sequence[int], skeleton: Skeleton,
                         with_pose: bool = True, size: float = 1.6) -> plt.Figure:
    """One row per split (e.g. source / target), the same image indices in every row."""
    names = list(splits)
    fig, axes = plt.subplots(len(names), len(indices), figsize=(size * len(indices), size * len(names) + 0.3),
                             squeeze=False)
    for r, name in enumerate(names):
        sp = splits[name]
        for c, i in enumerate(indices):
            ax = axes[r, c]
            ax.imshow(_image(sp.images[i]), interpolation="nearest")
            if with_pose:
                draw_pose(ax, sp.keypoints[i], skeleton, sp.visible[i], linewidth=0.8, markersize=5)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=10)
    fig.tight_layout()
    return fig


def dataset_samples(splits: Mapping[str, object], n: int = 8, size: float = 1.6,
                    suptitle: str | None = None) -> plt.Figure:
    """One row per split (e.g. a real task's source and target dataset), ``n`` samples
    spread evenly over each split (splits of different lengths and orders), each with its
    skeleton; occluded joints as hollow rings. Rows are labelled with their names and
    sizes."""
    names = list(splits)
    fig, axes = plt.subplots(len(names), n, figsize=(size * n, size * len(names) + 0.4), squeeze=False)
    for r, name in enumerate(names):
        sp = splits[name]
        count = len(sp)
        idx = torch.linspace(0, count - 1, min(n, count)).round().long().tolist() if count else []
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c >= len(idx):
                ax.set_axis_off()
                continue
            i = idx[c]
            ax.imshow(_image(sp.images[i]), interpolation="nearest")
            draw_pose(ax, sp.keypoints[i], sp.skeleton, sp.visible[i], linewidth=0.8, markersize=5)
            if c == 0:
                ax.set_ylabel(f"{name}\n({count} images)", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_pairs(split, pairs, n: int = 4, size: float = 1.8) -> plt.Figure:
    """Base/driving pairs: base on top, driving below, with their skeletons."""
    fig, axes = plt.subplots(2, n, figsize=(size * n, size * 2), squeeze=False)
    for c in range(n):
        for r, idx in enumerate(pairs[c].tolist()):
            ax = axes[r, c]
            ax.imshow(_image(split.images[idx]), interpolation="nearest")
            draw_pose(ax, split.keypoints[idx], split.skeleton, split.visible[idx], linewidth=0.8, markersize=5)
            ax.set_axis_off()
            ax.set_title(f"{'base' if r == 0 else 'driving'}: seq {int(split.sequence[idx])} "
                         f"frame {int(split.frame[idx])}", fontsize=7)
    fig.tight_layout()
    return fig


def show_pose3d(keypoints3d, skeleton: Skeleton, ax=None, spacing: float = 1.2) -> plt.Figure:
    """3D skeletons in camera coordinates (x right, y down, z forward): one pose (K, 3) or
    several (N, K, 3) side by side, each centred on its mean joint; drawn with up = -y."""
    kp = torch.as_tensor(keypoints3d).detach().cpu().numpy()
    kp = kp[None] if kp.ndim == 2 else kp
    kp = kp - kp.mean(1, keepdims=True)
    span = np.abs(kp).max()
    kp = kp + np.arange(len(kp))[:, None, None] * np.array([2 * span * spacing, 0, 0])
    if ax is None:
        fig = plt.figure(figsize=(2.6 * len(kp), 2.8))
        ax = fig.add_subplot(projection="3d")
    else:
        fig = ax.figure
    for pose in kp:
        for (p, c), col in zip(skeleton.bones, bone_colours(skeleton)):
            ax.plot(pose[[p, c], 0], pose[[p, c], 2], -pose[[p, c], 1], color=col, lw=2)
        ax.scatter(pose[:, 0], pose[:, 2], -pose[:, 1], c="k", s=4)
    lo, hi = kp.reshape(-1, 3).min(0), kp.reshape(-1, 3).max(0)
    pad = 0.05 * (hi - lo).max()
    ax.set_xlim(lo[0] - pad, hi[0] + pad), ax.set_ylim(lo[2] - pad, hi[2] + pad)
    ax.set_zlim(-hi[1] - pad, -lo[1] + pad)
    ax.set_box_aspect((hi[0] - lo[0] + 2 * pad, hi[2] - lo[2] + 2 * pad, hi[1] - lo[1] + 2 * pad), zoom=1.3)
    ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    ax.view_init(elev=15, azim=-70)
    return fig


def show_heatmaps(image, heatmaps, skeleton: Skeleton, joints: Sequence[int] | None = None,
                  keypoints=None, title: str = "") -> plt.Figure:
    """The image with all heatmaps overlaid (max over joints), then single joints."""
    hm = torch.as_tensor(heatmaps).detach().float().cpu()
    joints = list(joints) if joints is not None else list(range(0, hm.shape[0], max(1, hm.shape[0] // 5)))[:5]
    size = _image(image).shape[0]
    fig, axes = plt.subplots(1, 2 + len(joints), figsize=(1.9 * (2 + len(joints)), 2.1))
    axes[0].imshow(_image(image), interpolation="nearest")
    if keypoints is not None:
        draw_pose(axes[0], keypoints, skeleton, linewidth=0.8, markersize=5)
    axes[0].set_title(title or "image")
    extent = (-0.5, size - 0.5, size - 0.5, -0.5)
    axes[1].imshow(_image(image), interpolation="nearest")
    axes[1].imshow(hm.max(0).values.numpy(), cmap="magma", alpha=0.65, extent=extent, interpolation="nearest")
    axes[1].set_title("max over joints")
    for ax, j in zip(axes[2:], joints):
        ax.imshow(hm[j].numpy(), cmap="magma", interpolation="nearest")
        ax.set_title(skeleton.joint_names[j])
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping]], keys: Sequence[str] = ("loss", "val_pck"),
                    labels: Mapping[str, str] | None = None) -> plt.Figure:
    """One panel per history key (e.g. loss, validation PCK) with one line per run."""
    labels = labels or {"loss": "training loss", "val_pck": "validation PCK@0.05 (All)"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, hist in histories.items():
            ax.plot([h["epoch"] for h in hist], [h[key] for h in hist], marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(labels.get(key, key))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def pck_bars(rows: Mapping[str, Mapping[str, float]], title: str = "", ylabel: str = "PCK@0.05") -> plt.Figure:
    """Grouped bars: one group per joint group, one bar per row (method / split)."""
    names = list(rows)
    groups = list(next(iter(rows.values())))
    x = np.arange(len(groups))
    w = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(groups) * max(1, len(names) / 2)), 3))
    for i, name in enumerate(names):
        vals = [rows[name][g] for g in groups]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * w, vals, w, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=len(names), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig


def pck_table(rows: Mapping[str, Mapping[str, float]], reference: str | None = None, digits: int = 1) -> str:
    """A Markdown table (rows = methods, columns = groups); with ``reference``, each cell
    also shows its difference to that row in parentheses."""
    groups = list(next(iter(rows.values())))
    lines = ["| | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for name, vals in rows.items():
        cells = []
        for g in groups:
            cell = f"{vals[g]:.{digits}f}"
            if reference is not None and name != reference:
                cell += f" ({vals[g] - rows[reference][g]:+.{digits}f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def prediction_grid(images, pred_keypoints, gt_keypoints, skeleton: Skeleton, titles=None,
                    ncols: int = 6, size: float = 1.9) -> plt.Figure:
    """Predictions (coloured skeleton) against ground truth (white dashed)."""
    fig, axes = _image_grid(images, ncols, size)
    for i, ax in enumerate(axes):
        draw_pose(ax, gt_keypoints[i], skeleton, colour="white", linewidth=0.8, markersize=3, style="--")
        draw_pose(ax, pred_keypoints[i], skeleton, linewidth=1.0, markersize=5)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def comparison_grid(images, gt_keypoints, predictions: Mapping[str, object], skeleton: Skeleton,
                    endpoints: Sequence[int], threshold_px: float, size: float = 1.7,
                    row_labels: Sequence[str] | None = None) -> plt.Figure:
    """Fig A: target images in rows; the ground truth, then each system's prediction in
    columns. Endpoint joints (fingertips, head) are ringed: green within ``threshold_px`` of
    the truth (a PCK hit), red otherwise; each panel counts its endpoint hits."""
    names = ["ground truth"] + list(predictions)
    n = len(images)
    fig, axes = plt.subplots(n, len(names), figsize=(size * len(names), size * n), squeeze=False)
    gt = torch.as_tensor(gt_keypoints).detach().cpu()
    ends = list(endpoints)
    for r in range(n):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.set_axis_off()
            ax.imshow(_image(images[r]), interpolation="nearest")
            kp = gt[r] if c == 0 else torch.as_tensor(predictions[name][r]).detach().cpu()
            draw_pose(ax, kp, skeleton, linewidth=0.9, markersize=4)
            if c == 0:
                ax.scatter(kp[ends, 0], kp[ends, 1], s=60, facecolors="none", edgecolors="white", linewidths=1.0)
            else:
                hit = (kp[ends] - gt[r, ends]).norm(dim=-1) <= threshold_px
                colours = ["#2ecc71" if h else "#e74c3c" for h in hit.tolist()]
                ax.scatter(kp[ends, 0], kp[ends, 1], s=60, facecolors="none", edgecolors=colours, linewidths=1.2)
                ax.text(1, 1, f"{int(hit.sum())}/{len(ends)}", color="white", fontsize=6, va="top",
                        bbox=dict(facecolor="black", alpha=0.5, pad=1, lw=0))
            if r == 0:
                ax.set_title(name, fontsize=8)
        if row_labels is not None:
            axes[r, 0].text(-2, images[r].shape[-2] / 2, row_labels[r], fontsize=6, rotation=90, ha="right",
                            va="center")
    fig.tight_layout()
    return fig
