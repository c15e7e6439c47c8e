"""Keypoint datasets: images + annotations -> network inputs, heatmap targets and meta.

:class:`KeypointDataset` wraps any split that holds uint8 ``images`` (N, 3, S, S),
``keypoints`` (N, K, 2) in pixels, ``visible`` (N, K), ``keypoints3d`` (N, K, 3) and
``intrinsics`` (N, 3, 3) — the built-in benchmark's :class:`~srpose_lib.synth.benchmark.SynthSplit`
and, later, the real-dataset readers. ``dataset[i]`` returns one sample (a dict);
``dataset.get_batch(indices, generator)`` returns a batch built in one vectorised pass,
which is what the training loop uses (per-sample Python work would dominate a CPU run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError, DataError
from ..skeletons import Skeleton
from .heatmaps import gaussian_targets
from .transforms import (AugmentConfig, color_jitter, flip_joints, random_affine,
                         random_blur, warp_images, warp_keypoints)

LABELS = ("all", "visible")


@dataclass(frozen=True)
class TargetConfig:
    """How keypoints become training targets.

    ``label='all'`` trains on every annotated joint, occluded ones included (H3D and
    Human3.6M annotate all joints); ``'visible'`` weights only visible joints (RHD's
    ``uv_vis`` weighting)."""

    heatmap_size: int = 32
    sigma: float = 1.0  # Gaussian std in heatmap cells (baselines: 2 at 64x64 maps)
    label: str = "all"

    def __post_init__(self):
        if self.label not in LABELS:
            raise ConfigError(f"unknown target label mode {self.label!r}", "use 'all' or 'visible'")


@dataclass(frozen=True)
class DataConfig:
    """Targets and augmentation of a training split (the images come from the benchmark)."""

    target: TargetConfig = field(default_factory=TargetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


class KeypointDataset(torch.utils.data.Dataset):
    """Samples ``{image, heatmaps, weights, keypoints, visible, keypoints3d, intrinsics,
    affine, flipped, index}`` from a split; ``augment=None`` for evaluation.

    ``keypoints`` are in the pixels of the returned (augmented) image; ``affine`` (2, 3)
    maps the original crop's pixels to them; ``keypoints3d``/``intrinsics`` describe the
    original crop."""

    REQUIRED = ("images", "keypoints", "visible", "keypoints3d", "intrinsics")

    def __init__(self, split, skeleton: Skeleton, target: TargetConfig,
                 augment: AugmentConfig | None = None):
        for name in self.REQUIRED:
            if not hasattr(split, name):
                raise DataError(f"split has no {name!r}", "pass a split with images and keypoint annotations")
        K = skeleton.num_joints
        if split.keypoints.shape[1:] != (K, 2):
            raise DataError(f"keypoints have shape {tuple(split.keypoints.shape)}, expected (N, {K}, 2) "
                            f"for the {skeleton.name} skeleton",
                            "check that the dataset's joint order was mapped to this skeleton")
        if split.images.dtype != torch.uint8 or split.images.dim() != 4:
            raise DataError(f"images must be uint8 (N, 3, H, W), got {split.images.dtype} "
                            f"{tuple(split.images.shape)}", "store images as uint8 tensors")
        size = split.images.shape[-1]
        if size % target.heatmap_size:
            raise ConfigError(f"image size {size} is not a multiple of heatmap size {target.heatmap_size}",
                              "choose target.heatmap_size dividing the image size")
        self.split = split
        self.skeleton = skeleton
        self.target = target
        self.augment = augment
        self.image_size = size

    def __len__(self) -> int:
        return self.split.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        batch = self.get_batch(torch.tensor([int(i)]))
        return {k: v[0] for k, v in batch.items()}

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> dict:
        """A batch for ``indices``; augmentation draws from ``generator`` (reproducible)."""
        s = self.split
        idx = indices.to(torch.long)
        images = s.images[idx].to(device).float().div_(255.0)
        kp = s.keypoints[idx].to(device).float()
        vis = s.visible[idx].to(device).float()
        B = idx.shape[0]
        aug = self.augment
        if aug is None:  # evaluation: the identity
            affine = torch.eye(2, 3, device=device).expand(B, 2, 3).clone()
            flipped = torch.zeros(B, dtype=torch.bool, device=device)
        else:
            affine, flipped = random_affine(B, aug, self.image_size, generator, device=device)
            images = warp_images(images, affine)
            kp = flip_joints(warp_keypoints(kp, affine), flipped, self.skeleton.flip_permutation)
            vis = flip_joints(vis, flipped, self.skeleton.flip_permutation)
            images = color_jitter(images, aug.color_jitter, generator)
            images = random_blur(images, aug, generator)
        labelled = vis if self.target.label == "visible" else torch.ones_like(vis)
        inside = ((kp >= 0) & (kp <= self.image_size - 1)).all(-1).float()
        heatmaps, weights = gaussian_targets(kp, labelled * inside, self.image_size,
                                             self.target.heatmap_size, self.target.sigma)
        return {
            "image": images, "heatmaps": heatmaps, "weights": weights, "keypoints": kp,
            "visible": vis * inside, "keypoints3d": s.keypoints3d[idx].to(device).float(),
            "intrinsics": s.intrinsics[idx].to(device).float(), "affine": affine,
            "flipped": flipped, "index": idx.to(device),
        }

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True, drop_last: bool = False, device="cpu"):
        """Iterate over the dataset in batches (shuffled with ``generator``)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.get_batch(order[start:start + batch_size], generator, device)
