"""A small vectorised rasteriser for capsule primitives with a z-buffer.

Each limb is a capsule (a cylinder with rounded ends whose radius may taper) between two
3D points. Every pixel tests every capsule of its image at once: the pixel's closest point
on the projected axis gives the capsule's silhouette, a spherical bulge gives the depth of
its surface, and the nearest surface wins (depth ordering), so self-occlusion is real. The
front surface's normal and axis coordinates feed shading and texturing.

Conventions: pixel centres at integer coordinates, (x, y) = (column, row); camera
coordinates x right, y down, z forward; intrinsics ``K`` map camera points to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def project(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection of camera points (B, N, 3) with intrinsics (B, 3, 3).

    Returns pixel coordinates (B, N, 2) and depths (B, N)."""
    z = points[..., 2].clamp_min(1e-6)
    x = K[:, None, 0, 0] * points[..., 0] / z + K[:, None, 0, 2]
    y = K[:, None, 1, 1] * points[..., 1] / z + K[:, None, 1, 2]
    return torch.stack([x, y], -1), z


@dataclass
class Fragments:
    """Per-pixel result of rasterisation (all (B, H, W) unless noted).

    depth: camera z of the front surface (``inf`` on background); part: index of the front
    capsule (-1 on background); alpha: silhouette coverage in [0, 1] (anti-aliased edge);
    normal: (B, 3, H, W) unit surface normal in camera coordinates; t: position along the
    front capsule's axis in [0, 1]; s: signed position across it in [-1, 1]."""

    depth: torch.Tensor
    part: torch.Tensor
    alpha: torch.Tensor
    normal: torch.Tensor
    t: torch.Tensor
    s: torch.Tensor


def rasterize(a: torch.Tensor, b: torch.Tensor, radius: torch.Tensor, K: torch.Tensor,
              size: int) -> Fragments:
    """Rasterise capsules from ``a`` (B, P, 3) to ``b`` (B, P, 3) with world radii
    ``radius`` (B, P, 2) into ``size`` × ``size`` images seen through intrinsics ``K``."""
    B, P, _ = a.shape
    device = a.device
    pa, za = project(a, K)
    pb, zb = project(b, K)
    f = K[:, 0, 0, None]
    ra_px = f * radius[..., 0] / za  # (B, P) radius in pixels at each end
    rb_px = f * radius[..., 1] / zb

    coords = torch.arange(size, device=device, dtype=a.dtype)
    u = coords.view(1, 1, 1, size)
    v = coords.view(1, 1, size, 1)

    def col(x):  # (B, P) -> (B, P, 1, 1)
        return x[..., None, None]

    vx, vy = pb[..., 0] - pa[..., 0], pb[..., 1] - pa[..., 1]
    inv_len2 = 1.0 / (vx * vx + vy * vy).clamp_min(1e-6)
    # position along the projected axis: linear in u and v, so built from two outer sums
    t = ((u - col(pa[..., 0])) * col(vx * inv_len2)
         + (v - col(pa[..., 1])) * col(vy * inv_len2)).clamp_(0.0, 1.0)
    dx = u - (col(pa[..., 0]) + t * col(vx))
    dy = v - (col(pa[..., 1]) + t * col(vy))
    d2 = dx * dx + dy * dy
    r_px = col(ra_px) + t * col(rb_px - ra_px)
    # inside the (slightly dilated, for anti-aliasing) silhouette?
    inside = d2 < (r_px + 0.5) ** 2
    h = (1.0 - d2 / (r_px * r_px).clamp_min(1e-6)).clamp_min(0.0).sqrt()
    r_world = col(radius[..., 0]) + t * col(radius[..., 1] - radius[..., 0])
    z_surface = col(za) + t * col(zb - za) - r_world * h
    z_surface = torch.where(inside, z_surface, torch.full_like(z_surface, float("inf")))

    depth, part = z_surface.min(dim=1)  # z-buffer: the nearest surface wins
    background = torch.isinf(depth)
    idx = part[:, None]

    def front(x):  # the value of the front capsule at every pixel
        return x.gather(1, idx)[:, 0]

    t_f, dx_f, dy_f = front(t), front(dx), front(dy)
    r_f, h_f = front(r_px), front(h)
    d_f = (dx_f * dx_f + dy_f * dy_f).sqrt()
    alpha = (r_f + 0.5 - d_f).clamp(0.0, 1.0)
    inv_r = 1.0 / r_f.clamp_min(1e-6)
    normal = torch.stack([dx_f * inv_r, dy_f * inv_r, -h_f], 1)
    normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-6)
    # signed across-axis coordinate: the side of the axis the pixel lies on
    vxf = vx.gather(1, part.view(B, -1)).view(B, size, size)
    vyf = vy.gather(1, part.view(B, -1)).view(B, size, size)
    cross = (vxf * dy_f - vyf * dx_f) / (vxf * vxf + vyf * vyf).sqrt().clamp_min(1e-6)
    s = (cross * inv_r).clamp(-1.0, 1.0)

    part = torch.where(background, torch.full_like(part, -1), part)
    alpha = torch.where(background, torch.zeros_like(alpha), alpha)
    return Fragments(depth=depth, part=part, alpha=alpha, normal=normal, t=t_f, s=s)


def joint_visibility(joints_px: torch.Tensor, joints_z: torch.Tensor, depth: torch.Tensor,
                     tolerance: torch.Tensor | float) -> torch.Tensor:
    """A joint is visible when it lies inside the image and no surface in front of it
    covers its pixel: the front depth there is no nearer than the joint minus
    ``tolerance`` (the radius of the limbs that meet at the joint, which cover it)."""
    B, K, _ = joints_px.shape
    H, W = depth.shape[-2:]
    x = joints_px[..., 0].round().long()
    y = joints_px[..., 1].round().long()
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    flat = (y.clamp(0, H - 1) * W + x.clamp(0, W - 1))
    front = depth.reshape(B, -1).gather(1, flat)
    return inside & (front >= joints_z - tolerance)
