"""The built-in synthetic-to-real benchmark: scenes, rendering and splits.

A split (task × domain × train/val/test) is a set of short motion sequences. Every
sequence has its own subject (proportions, colours), camera, light, background and
optional occluder; its frames interpolate smoothly between two key poses, so consecutive
frames make base/driving pairs. Every image comes with 2D keypoints (in crop pixels), 3D
keypoints (camera coordinates), visibility flags, crop intrinsics and the crop box.

Everything is deterministic from ``(seed, task, domain, split)``: the scene table is drawn
from one seeded generator, and per-image sensor noise comes from a counter-based hash of
the image index, so an image is the same whether it is rendered alone, in a batch, on the
CPU or cached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from ..config import stable_hash, to_dict
from ..data.crops import crop_intrinsics
from ..errors import ConfigError, DataError
from ..skeletons import Skeleton
from . import appearance as ap
from .domains import DomainConfig, domain_preset, kinematic_model, sample_keyposes, check_task
from .kinematics import LOCAL_TO_CAMERA, KinematicModel, rot_x, rot_y, rot_z
from .render import joint_visibility, project, rasterize

# Bump whenever rendering changes what an image looks like: cached splits then re-render.
BENCHMARK_VERSION = 1
SPLITS = ("train", "val", "test")
FRAME_W, FRAME_H = 320.0, 240.0


@dataclass(frozen=True)
class BenchmarkConfig:
    """Sizes, resolution and domains of the benchmark for one task."""

    task: str = "hand"
    image_size: int = 64
    frames_per_sequence: int = 8
    num_train: int = 8000
    num_val: int = 512
    num_test: int = 1024
    seed: int = 0
    crop_scale: float = 1.5  # square crop side / keypoint box side (as the baselines)
    source: DomainConfig = field(default_factory=lambda: domain_preset("hand", "source"))
    target: DomainConfig = field(default_factory=lambda: domain_preset("hand", "target"))

    def __post_init__(self):
        check_task(self.task)
        if self.image_size < 16:
            raise ConfigError(f"image_size {self.image_size} is too small", "use 16 px or more")

    def domain(self, name: str) -> DomainConfig:
        if name not in ("source", "target"):
            raise ConfigError(f"unknown domain {name!r}", "use 'source' or 'target'")
        return self.source if name == "source" else self.target

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]


def benchmark_config(task: str, **overrides) -> BenchmarkConfig:
    """A :class:`BenchmarkConfig` with the task's own domain presets."""
    from ..config import override

    cfg = BenchmarkConfig(task=task, source=domain_preset(task, "source"),
                          target=domain_preset(task, "target"))
    return override(cfg, **overrides) if overrides else cfg


# ----------------------------------------------------------------------------- scene table

_SIZE = {"hand": 20.0, "body": 1.75}  # subject size in model units (cm / m)


def _u(gen, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def _hsv(h, s, v):
    """HSV (each (...,) in [0, 1]) to RGB (..., 3)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], -1)
    return v[..., None] - v[..., None] * s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _material_colours(task: str, dom: DomainConfig, n: int, gen) -> torch.Tensor:
    """Per-sequence colours of the model's materials (n, M, 3)."""
    skin = _hsv(_u(gen, n, 0.03, 0.09), _u(gen, n, 0.25, 0.6), _u(gen, n, 0.45, 0.95))
    rand = _hsv(torch.rand(n, 3, generator=gen), _u(gen, (n, 3), 0.2, 0.9), _u(gen, (n, 3), 0.25, 0.95))
    if task == "hand":  # skin, palm, sleeve
        return torch.stack([skin, (skin * 1.06).clamp(0, 1), rand[:, 0]], 1)
    return torch.stack([skin, rand[:, 0], rand[:, 1], rand[:, 2] * 0.5], 1)  # skin shirt pants shoes


def sample_scene_table(cfg: BenchmarkConfig, domain: str, split: str) -> dict:
    """Draw every random choice of a split: per-sequence scene and per-frame effects."""
    dom = cfg.domain(domain)
    n_img = cfg.split_size(split)
    T = cfg.frames_per_sequence
    n_seq = max(1, math.ceil(n_img / T))
    seed = int(stable_hash([cfg.seed, cfg.task, domain, split], length=12), 16) % (2**62)
    gen = torch.Generator().manual_seed(seed)
    model = kinematic_model(cfg.task)
    P = model.primitives.count
    D = model.num_params

    s = {}
    # subject
    bias = torch.tensor(dom.shape_bias) if dom.shape_bias else torch.ones(model.num_shape)
    s["shape"] = model.sample_shape(n_seq, gen, dom.shape_spread) * bias
    s["radius_scale"] = _u(gen, n_seq, *dom.radius_scale)
    s["materials"] = _material_colours(cfg.task, dom, n_seq, gen)
    # motion: two key poses and a smooth path between them
    s["pose_a"] = sample_keyposes(model, dom.pose_prior, n_seq, gen)
    s["pose_b"] = model.clamp(s["pose_a"] + dom.motion * (
        sample_keyposes(model, dom.pose_prior, n_seq, gen) - s["pose_a"]) * 0.5)
    for name, (lo, hi), step in (("yaw", dom.yaw, 15.0), ("pitch", dom.pitch, 6.0), ("roll", dom.roll, 10.0)):
        start = _u(gen, n_seq, lo, hi)
        s[name + "_a"] = start
        s[name + "_b"] = (start + _u(gen, n_seq, -step, step) * dom.motion).clamp(lo, hi)
    s["distance"] = _u(gen, n_seq, *dom.distance) * _SIZE[cfg.task]
    s["offset"] = _u(gen, (n_seq, 2), -0.6, 0.6)  # where the subject stands in the frame
    s["drift"] = _u(gen, (n_seq, 2), -0.08, 0.08) * dom.motion
    # light and surface texture
    light = torch.tensor([0.0, 0.0, -1.0]) + dom.light_spread * _u(gen, (n_seq, 3), -1.0, 1.0) * torch.tensor([1.0, 1.0, 0.3])
    s["light"] = light / light.norm(dim=-1, keepdim=True)
    s["ambient"] = _u(gen, n_seq, *dom.ambient)
    s["tex_freq"] = _u(gen, (n_seq, P, 4), 0.5, 4.0) * torch.tensor([1.0, 0.6, 1.6, 0.8])
    s["tex_phase"] = torch.rand(n_seq, P, 2, generator=gen)
    # background
    s["bg_colour"] = _hsv(torch.rand(n_seq, generator=gen), _u(gen, n_seq, 0.0, 0.5), _u(gen, n_seq, 0.15, 0.95))
    s["bg_gradient"] = _u(gen, n_seq, -0.3, 0.3)
    N = max(dom.clutter_shapes, 1)
    s["field"] = _hsv(torch.rand(n_seq, 3, 4, generator=gen), _u(gen, (n_seq, 3, 4), 0.1, 0.7),
                      _u(gen, (n_seq, 3, 4), 0.15, 0.9)).permute(0, 3, 1, 2)
    # clutter around the subject, sized in units of its extent in the frame
    extent = dom.focal * _SIZE[cfg.task] / s["distance"]  # (n_seq,) px
    centre = torch.stack([FRAME_W / 2 + s["offset"][:, 0] * FRAME_W / 4,
                          FRAME_H / 2 + s["offset"][:, 1] * FRAME_H / 4], -1)
    ext = extent[:, None]
    shapes = torch.stack([
        centre[:, :1] + _u(gen, (n_seq, N), -1.0, 1.0) * ext,
        centre[:, 1:] + _u(gen, (n_seq, N), -1.0, 1.0) * ext,
        _u(gen, (n_seq, N), *dom.clutter_size) * ext, _u(gen, (n_seq, N), *dom.clutter_size) * ext * 0.7,
        _u(gen, (n_seq, N), 0.0, math.pi), (torch.rand(n_seq, N, generator=gen) < 0.5).float(),
    ], -1)
    s["shapes"] = shapes
    s["shape_colours"] = _hsv(torch.rand(n_seq, N, generator=gen), _u(gen, (n_seq, N), 0.1, 0.9),
                              _u(gen, (n_seq, N), 0.1, 1.0))
    s["stripes"] = torch.stack([_u(gen, (n_seq, N), 0.02, 0.25), _u(gen, (n_seq, N), 0.0, math.pi),
                                _u(gen, (n_seq, N), 0.0, 2 * math.pi)], -1)
    s["stripe_amp"] = _u(gen, (n_seq, N), 0.0, 0.5) * (torch.rand(n_seq, N, generator=gen) < 0.6)
    # occluder: in front of the subject, placed relative to its box (in box sides)
    s["occluder_on"] = torch.rand(n_seq, generator=gen) < dom.occluder_prob
    s["occluder"] = torch.stack([
        _u(gen, n_seq, -0.3, 0.3), _u(gen, n_seq, -0.3, 0.3),
        _u(gen, n_seq, 0.08, 0.2), _u(gen, n_seq, 0.05, 0.15),
        _u(gen, n_seq, 0.0, math.pi), (torch.rand(n_seq, generator=gen) < 0.5).float(),
    ], -1)
    s["occluder_colour"] = _hsv(torch.rand(n_seq, generator=gen), _u(gen, n_seq, 0.1, 0.9),
                                _u(gen, n_seq, 0.15, 1.0))
    s["occluder_stripes"] = torch.stack([_u(gen, n_seq, 0.05, 0.3), _u(gen, n_seq, 0.0, math.pi),
                                         _u(gen, n_seq, 0.0, 2 * math.pi)], -1)
    # per frame
    s["blur"] = _u(gen, n_seq * T, *dom.blur)
    s["noise"] = _u(gen, n_seq * T, *dom.noise)
    s["gamma"] = _u(gen, n_seq * T, *dom.gamma)
    s["white_balance"] = 1.0 + dom.white_balance * _u(gen, (n_seq * T, 3), -1.0, 1.0)
    s["num_images"] = n_img
    s["frames_per_sequence"] = T
    s["noise_seed"] = seed % (2**31)
    return {k: v for k, v in s.items()}


# ----------------------------------------------------------------------------- geometry


def frame_geometry(model: KinematicModel, table: dict, index: torch.Tensor, focal: float,
                   crop_scale: float, size: int) -> dict:
    """3D points in camera coordinates, frame and crop intrinsics, crop boxes and 2D
    keypoints (crop pixels) of the images ``index``."""
    T = table["frames_per_sequence"]
    seq = index // T
    tau = (index % T).float() / max(T - 1, 1)
    smooth = tau * tau * (3 - 2 * tau)

    def lerp(name):
        a, b = table[name + "_a"][seq], table[name + "_b"][seq]
        w = smooth.view(-1, *([1] * (a.dim() - 1)))
        return a + (b - a) * w

    pose = model.clamp(lerp("pose"))
    shape = table["shape"][seq]
    pts = model.forward(pose, shape)  # (B, N, 3) model-local
    J = model.skeleton.num_joints
    centre = pts[:, :J].mean(1, keepdim=True)
    yaw, pitch, roll = (lerp(n) * (math.pi / 180.0) for n in ("yaw", "pitch", "roll"))
    R = rot_z(roll) @ LOCAL_TO_CAMERA @ rot_x(pitch) @ rot_y(yaw)
    dist = table["distance"][seq]
    # place the subject: its centre at a frame position given by offset (+ drift)
    off = table["offset"][seq] + table["drift"][seq] * tau[:, None]
    B = index.shape[0]
    f = focal
    tx = off[:, 0] * (FRAME_W * 0.25) * dist / f
    ty = off[:, 1] * (FRAME_H * 0.25) * dist / f
    trans = torch.stack([tx, ty, dist], -1)
    cam = (R @ (pts - centre).transpose(1, 2)).transpose(1, 2) + trans[:, None]
    K = torch.tensor([[f, 0.0, FRAME_W / 2], [0.0, f, FRAME_H / 2], [0.0, 0.0, 1.0]]).expand(B, 3, 3)
    px, _ = project(cam[:, :J], K)
    lo, hi = px.min(1).values, px.max(1).values
    side = crop_scale * (hi - lo).max(-1).values.clamp_min(4.0)
    mid = (lo + hi) / 2
    boxes = torch.stack([mid[:, 0] - side / 2, mid[:, 1] - side / 2, side], -1)
    Kc = crop_intrinsics(K, boxes, size)
    kp2d, z = project(cam[:, :J], Kc)
    return {"cam": cam, "K": Kc, "boxes": boxes, "keypoints": kp2d, "depth": z, "seq": seq}


def hash_noise(index: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard-normal noise (B, *shape) that depends only on (seed, image index, pixel):
    a counter-based integer hash, so batching never changes an image."""
    n = math.prod(shape)
    pix = torch.arange(n, dtype=torch.int64)
    x = (index.to(torch.int64)[:, None] * 0x9E3779B1 + pix[None] * 0x85EBCA77 + seed) & 0xFFFFFFFF

    def mix(v):
        v = ((v ^ (v >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
        v = ((v ^ (v >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
        return v ^ (v >> 16)

    u1 = (mix(x) + 0.5) / 4294967296.0
    u2 = (mix(x ^ 0x5BD1E995) + 0.5) / 4294967296.0
    g = torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
    return g.float().view(-1, *shape)


# ----------------------------------------------------------------------------- rendering


class Renderer:
    """Renders images of one split's scene table; ``compile=True`` fuses the rasteriser
    with ``torch.compile`` (several times faster on a CPU, compiled once per chunk size)."""

    def __init__(self, cfg: BenchmarkConfig, domain: str, compile: bool = False, chunk: int = 128):
        self.cfg = cfg
        self.domain = cfg.domain(domain)
        self.model = kinematic_model(cfg.task)
        self.chunk = chunk
        self.compiled = compile
        if compile and not torch.cuda.is_available():
            # torch.compile on a CPU-only machine warns "No CUDA runtime is found"; harmless
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

        def fuse(fn):  # elementwise-heavy steps are fused by torch.compile when asked
            return torch.compile(fn, dynamic=False) if compile else fn

        self._raster = fuse(rasterize)
        self._clutter = fuse(ap.clutter_background)
        self._texture = fuse(ap.surface_texture)
        self._noise = fuse(hash_noise)
        prim = self.model.primitives
        self._a = torch.tensor(prim.a)
        self._b = torch.tensor(prim.b)
        self._radius = torch.tensor(prim.radius)
        self._material = torch.tensor(prim.material)
        # tolerance for the visibility test: the thickest limb meeting at each joint
        J = self.model.skeleton.num_joints
        tol = torch.full((J,), 2.0 * self.model.unit)  # joints that end no capsule
        touched = torch.zeros(J, dtype=torch.bool)
        for p in range(prim.count):
            for j in (prim.a[p], prim.b[p]):
                if j < J and not touched[j]:
                    touched[j], tol[j] = True, 0.0
        for p in range(prim.count):
            for end, j in ((0, prim.a[p]), (1, prim.b[p])):
                if j < J:
                    tol[j] = max(tol[j], prim.radius[p][end])
        self._joint_radius = tol

    def render(self, table: dict, index: torch.Tensor, layers: bool = False) -> dict:
        """Render the images ``index`` in chunks: uint8 images and annotations. With
        ``layers=True`` also the intermediate layers (depth, part, normal, alpha,
        foreground, background), for teaching."""
        outs = []
        for start in range(0, index.shape[0], self.chunk):
            idx = index[start:start + self.chunk]
            pad = self.chunk - idx.shape[0]
            if pad and self.compiled:  # keep one compiled shape
                idx = torch.cat([idx, idx[-1:].expand(pad)])
            out = self._render_chunk(table, idx, layers)
            if pad and self.compiled:
                out = {k: v[: self.chunk - pad] for k, v in out.items()}
            outs.append(out)
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def _render_chunk(self, table: dict, index: torch.Tensor, layers: bool = False) -> dict:
        cfg, dom, size = self.cfg, self.domain, self.cfg.image_size
        g = frame_geometry(self.model, table, index, dom.focal, cfg.crop_scale, size)
        seq = g["seq"]
        cam, Kc = g["cam"], g["K"]
        B = index.shape[0]
        limb_scale = table["radius_scale"][seq] * table["shape"][seq, 0]  # (B,)
        radius = self._radius[None] * limb_scale[:, None, None]
        frag = self._raster(cam[:, self._a], cam[:, self._b], radius, Kc, size)

        albedo = table["materials"][seq][:, self._material]  # (B, P, 3)
        texture = None
        if dom.texture > 0:
            texture = dom.texture * self._texture(frag, table["tex_freq"][seq], table["tex_phase"][seq])
        fg = ap.shade(frag, albedo, table["light"][seq], table["ambient"][seq], dom.shading,
                      dom.outline, texture)
        X, Y = ap.crop_to_frame(g["boxes"], size)
        if dom.background == "plain":
            bg = ap.plain_background(table["bg_colour"][seq], table["bg_gradient"][seq], Y, size)
        else:
            soft = (g["boxes"][:, 2] / size)[:, None, None, None]
            bg = self._clutter(X, Y, table["field"][seq], table["shapes"][seq],
                                       table["shape_colours"][seq], table["stripes"][seq],
                                       table["stripe_amp"][seq], soft)
        alpha = frag.alpha[:, None]
        img = fg * alpha + bg * (1 - alpha)

        J = self.model.skeleton.num_joints
        visible = joint_visibility(g["keypoints"], g["depth"], frag.depth,
                                   2.0 * self._joint_radius[None] * limb_scale[:, None])
        # occluder: a textured shape in front of everything, placed relative to the box
        on = table["occluder_on"][seq]
        if on.any():
            occ = table["occluder"][seq].clone()
            box = g["boxes"]
            centre = box[:, :2] + box[:, 2:3] / 2
            occ[:, 0] = centre[:, 0] + occ[:, 0] * box[:, 2]
            occ[:, 1] = centre[:, 1] + occ[:, 1] * box[:, 2]
            occ[:, 2] = occ[:, 2] * box[:, 2]
            occ[:, 3] = occ[:, 3] * box[:, 2]
            soft = (box[:, 2] / size)[:, None, None, None]
            m = ap.shape_masks(X, Y, occ[:, None], soft)[:, 0] * on[:, None, None].float()
            tex = ap.stripes(X, Y, table["occluder_stripes"][seq][:, None])[:, 0]
            col = table["occluder_colour"][seq][:, :, None, None] * (1 + 0.3 * tex[:, None])
            img = img * (1 - m[:, None]) + col * m[:, None]
            kx = g["keypoints"][..., 0].round().long().clamp(0, size - 1)
            ky = g["keypoints"][..., 1].round().long().clamp(0, size - 1)
            covered = m.view(B, -1).gather(1, ky * size + kx) > 0.5
            visible = visible & ~covered

        # camera: blur, white balance, gamma, sensor noise
        scale = size / 64.0
        img = ap.gaussian_blur(img, table["blur"][index] * scale, dom.blur[1] * scale)
        img = img.clamp(0, 1) * table["white_balance"][index][:, :, None, None]
        img = img.clamp(1e-4, 1) ** table["gamma"][index][:, None, None, None]
        if dom.noise[1] > 0:
            img = img + table["noise"][index][:, None, None, None] * self._noise(
                index, (3, size, size), table["noise_seed"])
        img = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        out = {"images": img, "keypoints": g["keypoints"], "visible": visible,
               "keypoints3d": cam[:, :J], "intrinsics": Kc, "boxes": g["boxes"],
               "sequence": seq, "frame": index % table["frames_per_sequence"]}
        if layers:
            out.update(depth=frag.depth, part=frag.part, normal=frag.normal, alpha=frag.alpha,
                       foreground=fg.clamp(0, 1), background=bg.clamp(0, 1))
        return out


# ----------------------------------------------------------------------------- splits


@dataclass
class SynthSplit:
    """One rendered split: tensors indexed by image. ``images`` is uint8 (N, 3, S, S)."""

    task: str
    domain: str
    split: str
    skeleton: Skeleton
    images: torch.Tensor
    keypoints: torch.Tensor  # (N, K, 2) crop pixels
    visible: torch.Tensor  # (N, K) bool
    keypoints3d: torch.Tensor  # (N, K, 3) camera coordinates
    intrinsics: torch.Tensor  # (N, 3, 3) crop intrinsics
    boxes: torch.Tensor  # (N, 3) crop box in the frame (x0, y0, side)
    sequence: torch.Tensor  # (N,)
    frame: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def pairs(self, max_gap: int = 3) -> torch.Tensor:
        """(base, driving) index pairs (M, 2) from the same sequence, 1..max_gap frames
        apart, in both orders."""
        out = []
        for gap in range(1, max_gap + 1):
            a = torch.arange(len(self) - gap)
            ok = self.sequence[a] == self.sequence[a + gap]
            a = a[ok]
            out += [torch.stack([a, a + gap], 1), torch.stack([a + gap, a], 1)]
        return torch.cat(out)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("images", "keypoints", "visible", "keypoints3d",
                                              "intrinsics", "boxes", "sequence", "frame")}


def split_key(cfg: BenchmarkConfig, domain: str, split: str) -> str:
    """File-name key of a rendered split: changes with anything that changes its images."""
    meta = {"version": BENCHMARK_VERSION, "task": cfg.task, "domain": to_dict(cfg.domain(domain)),
            "split": split, "size": cfg.image_size, "n": cfg.split_size(split),
            "T": cfg.frames_per_sequence, "seed": cfg.seed, "crop": cfg.crop_scale}
    return f"{cfg.task}-{domain}-{split}-{cfg.image_size}px-{stable_hash(meta)}"


def sample_keypoints(cfg: BenchmarkConfig, domain: str, split: str) -> SimpleNamespace:
    """A split's annotations without its images (fast: no rendering): ``keypoints`` (N, K, 2)
    crop pixels, ``keypoints3d`` (N, K, 3) camera coordinates and ``skeleton``, the same
    values :func:`render_split` gives for the same configuration."""
    table = sample_scene_table(cfg, domain, split)
    model = kinematic_model(cfg.task)
    g = frame_geometry(model, table, torch.arange(table["num_images"]), cfg.domain(domain).focal,
                       cfg.crop_scale, cfg.image_size)
    J = model.skeleton.num_joints
    return SimpleNamespace(keypoints=g["keypoints"].float(), keypoints3d=g["cam"][:, :J].float(),
                           skeleton=model.skeleton)


def render_split(cfg: BenchmarkConfig, domain: str, split: str, compile: bool = False,
                 progress: bool = False) -> SynthSplit:
    """Render a whole split (no caching)."""
    table = sample_scene_table(cfg, domain, split)
    renderer = Renderer(cfg, domain, compile=compile)
    n = table["num_images"]
    chunks = range(0, n, renderer.chunk * 8)
    if progress:
        from ..utils import progress as bar

        chunks = bar(chunks, desc=f"render {cfg.task}/{domain}/{split}", unit="chunk")
    parts = [renderer.render(table, torch.arange(s, min(n, s + renderer.chunk * 8))) for s in chunks]
    data = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return SynthSplit(cfg.task, domain, split, kinematic_model(cfg.task).skeleton, **data)


def load_split(cfg: BenchmarkConfig, domain: str, split: str, cache_dir: str | Path | None = None,
               compile: bool = False, progress: bool = False) -> SynthSplit:
    """A rendered split, from ``cache_dir/data`` when it is there, else rendered and saved."""
    if cache_dir is None:
        return render_split(cfg, domain, split, compile=compile, progress=progress)
    path = Path(cache_dir) / "data" / f"{split_key(cfg, domain, split)}.pt"
    if path.exists():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: say so and render again
            raise DataError(f"cached split {path} could not be read ({e})",
                            f"delete {path} and run again to re-render it") from e
        expected = {"images", "keypoints", "visible", "keypoints3d", "intrinsics", "boxes", "sequence", "frame"}
        if set(data) != expected or data["images"].shape[0] != cfg.split_size(split):
            raise DataError(f"cached split {path} does not match its configuration",
                            f"delete {path} and run again to re-render it")
        return SynthSplit(cfg.task, domain, split, kinematic_model(cfg.task).skeleton, **data)
    result = render_split(cfg, domain, split, compile=compile, progress=progress)
    from ..utils import atomic_torch_save

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(result.to_dict(), path)
    return result
