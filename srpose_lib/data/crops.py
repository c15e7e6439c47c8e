"""Square keypoint crops: the box, and what it does to pixels, keypoints and intrinsics.

One pixel convention everywhere (the built-in benchmark's): a crop box ``(x0, y0, side)``
in frame pixels, resized to ``size`` px, maps frame pixel ``X`` to crop pixel

    x = (X + 0.5 - x0) * size / side - 0.5

(pixel centres at integer coordinates; the box covers ``[x0 - 0.5, x0 + side - 0.5]``).
:func:`crop_keypoints`, :func:`crop_intrinsics` and :func:`crop_image` all use it, so a
keypoint, its projection through the crop intrinsics and the image content under it agree.

:func:`scale_box` follows the baselines' ``util.scale_box`` (Transfer-Learning-Library,
``tllib/vision/datasets/keypoint_detection/util.py``): the square side is
``round(scale * max(w, h))`` of the keypoint box, capped at the image's shorter side,
centred on the box (``left = round(cx - side / 2)``) and shifted to stay inside the image.
One difference in the pixels, well below a pixel at 256 px: TLL then crops
``side - 1`` pixels (``right - left``) and resizes those, we resize the full ``side``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError

__all__ = ["scale_box", "crop_intrinsics", "crop_keypoints", "crop_image", "flip_crop"]


def scale_box(keypoints, valid=None, scale: float = 1.5, image_size=None) -> np.ndarray:
    """The square crop box ``(x0, y0, side)`` around the ``valid`` keypoints.

    ``keypoints`` (K, 2) or (N, K, 2) in frame pixels (numpy or torch); ``valid`` (K,) or
    (N, K) bool (default: all); ``image_size`` ``(W, H)`` or ``None`` (no clamping).
    Returns a float64 array (3,) or (N, 3) of integers (TLL rounds every side and corner):
    side = ``min(round(scale * max(w, h)), min(W, H))``, the box centred on the keypoints'
    box and shifted to stay inside the image. Raises :class:`DataError` when a sample has
    no valid keypoint.
    """
    kp = np.asarray(keypoints.detach().cpu() if torch.is_tensor(keypoints) else keypoints,
                    dtype=np.float64)
    single = kp.ndim == 2
    if single:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be (K, 2) or (N, K, 2), got {tuple(kp.shape)}")
    if valid is None:
        ok = np.ones(kp.shape[:2], dtype=bool)
    else:
        ok = np.asarray(valid.detach().cpu() if torch.is_tensor(valid) else valid).astype(bool)
        ok = ok.reshape(kp.shape[:2])
    ok = ok & np.isfinite(kp).all(-1)
    out = np.empty((kp.shape[0], 3), dtype=np.float64)
    for i in range(kp.shape[0]):
        pts = kp[i][ok[i]]
        if len(pts) == 0:
            raise DataError(f"sample {i} has no valid keypoint to put a crop box around",
                            "skip samples without annotated keypoints before cropping")
        left, upper = pts.min(0)
        right, lower = pts.max(0)
        cx, cy = (left + right) / 2, (upper + lower) / 2
        side = float(round(scale * max(right - left, lower - upper)))
        if image_size is not None:
            W, H = image_size
            side = min(side, float(min(W, H)))
        side = max(side, 1.0)
        x0 = float(round(cx - side / 2))
        y0 = float(round(cy - side / 2))
        if image_size is not None:
            W, H = image_size
            # TLL: shift right/down first, then left/up (a box that does not fit is capped
            # above, so the two never conflict)
            x0 = max(x0, 0.0)
            if x0 + side - 1 >= W:
                x0 = W - side
            y0 = max(y0, 0.0)
            if y0 + side - 1 >= H:
                y0 = H - side
        out[i] = (x0, y0, side)
    return out[0] if single else out


def _as_like(value, like):
    if torch.is_tensor(like):
        return torch.as_tensor(value, dtype=like.dtype if like.is_floating_point() else torch.float32,
                               device=like.device)
    return np.asarray(value, dtype=like.dtype if np.issubdtype(np.asarray(like).dtype, np.floating)
                      else np.float64)


def crop_intrinsics(K, boxes, size: int):
    """Intrinsics of a square crop ``boxes`` (x0, y0, side) of a frame resized to ``size``:
    frame pixel X maps to crop pixel (X + 0.5 - x0) * size / side - 0.5.

    ``K`` (..., 3, 3) and ``boxes`` (..., 3), torch or numpy (the result has ``K``'s type)."""
    boxes = _as_like(boxes, K)
    s = size / boxes[..., 2]
    Kc = K.clone() if torch.is_tensor(K) else np.array(K, copy=True)
    Kc[..., 0, 0] = K[..., 0, 0] * s
    Kc[..., 1, 1] = K[..., 1, 1] * s
    Kc[..., 0, 1] = K[..., 0, 1] * s
    Kc[..., 0, 2] = (K[..., 0, 2] + 0.5 - boxes[..., 0]) * s - 0.5
    Kc[..., 1, 2] = (K[..., 1, 2] + 0.5 - boxes[..., 1]) * s - 0.5
    return Kc


def crop_keypoints(xy, boxes, size: int):
    """Frame pixels ``xy`` (..., K, 2) to crop pixels of ``boxes`` (..., 3) resized to
    ``size``: x = (X + 0.5 - x0) * size / side - 0.5. Torch or numpy."""
    boxes = _as_like(boxes, xy)
    s = (size / boxes[..., 2])[..., None, None]
    return (xy + 0.5 - boxes[..., None, :2]) * s - 0.5


def uncrop_keypoints(xy, boxes, size: int):
    """The inverse of :func:`crop_keypoints`: crop pixels back to frame pixels."""
    boxes = _as_like(boxes, xy)
    s = (boxes[..., 2] / size)[..., None, None]
    return (xy + 0.5) * s - 0.5 + boxes[..., None, :2]


def crop_image(image: torch.Tensor, box, size: int) -> torch.Tensor:
    """Crop ``image`` uint8 (3, H, W) to the square ``box`` (x0, y0, side), resized to
    ``size``: uint8 (3, size, size). Bilinear, zero outside the image, with the same pixel
    mapping as :func:`crop_keypoints`.

    When the box is more than twice the output size, the frame is first averaged over
    ``r x r`` blocks (``r = floor(side / size)``) so that downscaling does not alias; the
    block average keeps the mapping (block ``p`` is centred on frame pixel
    ``p * r + (r - 1) / 2``)."""
    if not torch.is_tensor(image) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a (3, H, W) tensor, got "
                         f"{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}")
    x0, y0, side = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(3))
    if not side > 0:
        raise ValueError(f"crop box side must be positive, got {side}")
    H, W = image.shape[1:]
    r = max(1, int(math.floor(side / size))) if side > 2 * size else 1
    # the frame region the crop reads, with a margin, zero-padded where it leaves the image
    xa = int(math.floor(x0)) - 2 * r
    ya = int(math.floor(y0)) - 2 * r
    wR = int(math.ceil((side + 4 * r) / r)) * r + r
    hR = wR
    region = torch.zeros(3, hR, wR, dtype=torch.float32)
    sx0, sy0 = max(xa, 0), max(ya, 0)
    sx1, sy1 = min(xa + wR, W), min(ya + hR, H)
    if sx1 > sx0 and sy1 > sy0:
        region[:, sy0 - ya:sy1 - ya, sx0 - xa:sx1 - xa] = image[:, sy0:sy1, sx0:sx1].float()
    if r > 1:
        region = torch.nn.functional.avg_pool2d(region[None], r)[0]
    h, w = region.shape[1:]
    # crop pixel c -> frame X = (c + 0.5) * side / size - 0.5 + x0 -> region (X - xa)
    # -> pooled (X - xa + 0.5) / r - 0.5 -> grid_sample's normalised (2 u + 1) / w - 1
    c = torch.arange(size, dtype=torch.float64)
    X = (c + 0.5) * side / size - 0.5 + x0
    Y = (c + 0.5) * side / size - 0.5 + y0
    u = (X - xa + 0.5) / r - 0.5
    v = (Y - ya + 0.5) / r - 0.5
    gx = ((2 * u + 1) / w - 1).float()
    gy = ((2 * v + 1) / h - 1).float()
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
    out = torch.nn.functional.grid_sample(region[None], grid, mode="bilinear",
                                          padding_mode="zeros", align_corners=False)[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def flip_crop(image: torch.Tensor | None, keypoints2d, keypoints3d, intrinsics, size: int):
    """Mirror a crop horizontally and keep its geometry consistent: crop pixel x becomes
    ``size - 1 - x`` (TLL's ``hflip``), the camera's X axis is negated (3D keypoints) and
    the principal point moves to ``size - 1 - cx``, so that projecting the flipped 3D
    keypoints with the flipped intrinsics gives the flipped 2D keypoints.

    Joint *slots* are not permuted: a flipped right hand stays a hand (Hand21 has no
    left/right joints) that now looks like a left hand. Any argument may be ``None``."""
    img = None if image is None else image.flip(-1)
    kp = None
    if keypoints2d is not None:
        kp = keypoints2d.copy() if isinstance(keypoints2d, np.ndarray) else keypoints2d.clone()
        kp[..., 0] = size - 1 - kp[..., 0]
    k3 = None
    if keypoints3d is not None:
        k3 = keypoints3d.copy() if isinstance(keypoints3d, np.ndarray) else keypoints3d.clone()
        k3[..., 0] = -k3[..., 0]
    K = None
    if intrinsics is not None:
        K = intrinsics.copy() if isinstance(intrinsics, np.ndarray) else intrinsics.clone()
        K[..., 0, 2] = size - 1 - K[..., 0, 2]
        K[..., 0, 1] = -K[..., 0, 1]
    return img, kp, k3, K
