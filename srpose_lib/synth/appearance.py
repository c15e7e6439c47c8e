"""Appearance of the built-in benchmark: shading, textures, backgrounds, occluders and
sensor effects, all batched over images.

Backgrounds and occluders live in the coordinates of the full (uncropped) camera frame, so
the frames of one sequence share one scene: what a base/driving pair needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.transforms import gaussian_blur  # noqa: F401  (re-exported for the renderer)
from .render import Fragments


def crop_to_frame(boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-pixel coordinates (X (B, 1, S), Y (B, S, 1)) of every crop pixel centre.

    ``boxes`` (B, 3) = (x0, y0, side): the crop covers frame pixels [x0, x0 + side)."""
    u = torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5
    scale = (boxes[:, 2] / size)[:, None]
    X = boxes[:, 0, None] + u[None] * scale - 0.5
    Y = boxes[:, 1, None] + u[None] * scale - 0.5
    return X[:, None, :], Y[:, :, None]


def surface_texture(frag: Fragments, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """A texture attached to each capsule: two oblique sinusoids in the capsule's (t, s)
    coordinates, so it moves with the limb. ``freq``/``phase``: (B, P, 4) and (B, P, 2)."""
    B, H, W = frag.part.shape
    part = frag.part.clamp_min(0).view(B, -1)

    def per_pixel(x, k):
        return x[..., k].gather(1, part).view(B, H, W)

    a = 2 * math.pi * (per_pixel(freq, 0) * frag.t + per_pixel(freq, 1) * frag.s + per_pixel(phase, 0))
    b = 2 * math.pi * (per_pixel(freq, 2) * frag.t - per_pixel(freq, 3) * frag.s + per_pixel(phase, 1))
    return 0.6 * torch.sin(a) + 0.4 * torch.sin(b) * torch.sin(a * 0.5 + 1.3)


def shade(frag: Fragments, albedo: torch.Tensor, light: torch.Tensor, ambient: torch.Tensor,
          mode: str, outline: float, texture: torch.Tensor | None) -> torch.Tensor:
    """Foreground colour (B, 3, H, W).

    ``albedo`` (B, P, 3) colour of every capsule; ``light`` (B, 3) unit direction towards
    the light; ``ambient`` (B,). ``toon``: two flat tones and dark outlines at silhouettes
    and depth edges. ``lit``: Lambertian shading with a little specular, times
    ``1 + texture`` when given."""
    B, H, W = frag.part.shape
    part = frag.part.clamp_min(0).view(B, 1, -1).expand(B, 3, -1)
    colour = albedo.transpose(1, 2).gather(2, part).view(B, 3, H, W)
    n_dot_l = (frag.normal * light[:, :, None, None]).sum(1, keepdim=True)
    amb = ambient[:, None, None, None]
    if mode == "toon":
        tone = torch.where(n_dot_l > 0.35, torch.ones_like(n_dot_l), torch.full_like(n_dot_l, 0.78))
        out = colour * tone
        if outline > 0:
            out = out * (1.0 - outline * depth_edges(frag.depth)[:, None])
    else:
        diffuse = n_dot_l.clamp_min(0.0)
        view_dir = torch.tensor([0.0, 0.0, -1.0], device=albedo.device)
        half = F.normalize(light + view_dir, dim=-1)
        spec = (frag.normal * half[:, :, None, None]).sum(1, keepdim=True).clamp_min(0) ** 24
        if texture is not None:
            colour = colour * (1.0 + texture[:, None]).clamp_min(0.0)
        out = colour * (amb + (1 - amb) * diffuse) + 0.18 * spec
    return out


def depth_edges(depth: torch.Tensor, rel_tol: float = 0.02) -> torch.Tensor:
    """1 where the depth jumps between neighbouring pixels (silhouettes, overlaps)."""
    finite = torch.isfinite(depth)
    far = torch.where(finite, depth, depth[finite].max() * 2 if finite.any() else torch.ones_like(depth))
    d = far[:, None]
    hi = F.max_pool2d(d, 3, 1, 1)
    lo = -F.max_pool2d(-d, 3, 1, 1)
    near = torch.where(finite, depth, torch.full_like(depth, float("inf")))
    ref = (-F.max_pool2d(-near[:, None], 3, 1, 1))[:, 0].clamp_max(1e6)
    return ((hi - lo)[:, 0] > rel_tol * ref).float()


def plain_background(colour: torch.Tensor, gradient: torch.Tensor, Y: torch.Tensor,
                     width: int) -> torch.Tensor:
    """A flat colour with a faint vertical gradient: (B, 3, H, W)."""
    ramp = (Y / 240.0 - 0.5)  # (B, H, 1)
    img = colour[:, :, None, None] * (1.0 + gradient[:, None, None, None] * ramp[:, None])
    return img.expand(-1, -1, -1, width)


def shape_masks(X: torch.Tensor, Y: torch.Tensor, shapes: torch.Tensor, soft: float) -> torch.Tensor:
    """Anti-aliased masks (B, N, H, W) of rotated rectangles / ellipses in frame pixels.

    ``shapes`` (B, N, 6): centre x, centre y, half width, half height, angle (rad),
    kind (0 rectangle, 1 ellipse). ``soft``: edge width in frame pixels."""
    cx, cy, hw, hh, ang, kind = [shapes[..., i, None, None] for i in range(6)]
    dx = X[:, None] - cx
    dy = Y[:, None] - cy
    c, s = torch.cos(ang), torch.sin(ang)
    lx = (c * dx + s * dy).abs()
    ly = (-s * dx + c * dy).abs()
    rect = torch.minimum(hw - lx, hh - ly)
    ell = (1.0 - ((lx / hw) ** 2 + (ly / hh) ** 2).sqrt()) * torch.minimum(hw, hh)
    signed = torch.where(kind > 0.5, ell, rect)
    return (signed / soft + 0.5).clamp(0.0, 1.0)


def stripes(X: torch.Tensor, Y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Stripe patterns (B, N, H, W) in [-1, 1]; ``params`` (B, N, 3) = frequency (cycles
    per frame pixel), orientation (rad), phase."""
    f, o, p = [params[..., i, None, None] for i in range(3)]
    return torch.sin(2 * math.pi * f * (torch.cos(o) * X[:, None] + torch.sin(o) * Y[:, None]) + p)


def clutter_background(X, Y, field: torch.Tensor, shapes: torch.Tensor, colours: torch.Tensor,
                       stripe: torch.Tensor, stripe_amp: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """A cluttered scene: a smooth colour field (``field`` (B, 3, 3, 4) colours on a grid
    over the frame) painted over by ``N`` textured shapes in order."""
    B = X.shape[0]
    H, W = Y.shape[1], X.shape[2]
    gx = (X / 320.0 * 2 - 1).expand(B, H, W)
    gy = (Y / 240.0 * 2 - 1).expand(B, H, W)
    grid = torch.stack([gx, gy], -1)
    img = F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)
    masks = shape_masks(X, Y, shapes, soft)
    tex = stripes(X, Y, stripe)
    for k in range(shapes.shape[1]):
        col = colours[:, k, :, None, None] * (1.0 + stripe_amp[:, k, None, None, None] * tex[:, k, None])
        m = masks[:, k, None]
        img = img * (1 - m) + col * m
    return img
