"""CC-SSL: consistency-constrained semi-supervised learning (Mu et al., CVPR 2020), a
comparison system of Fig A.

What it does (facts from the authors' code, https://github.com/JitengMu/Learning-from-Synthetic-Animals,
``CCSSL/CCSSL.py``, ``CCSSL/scripts/consistency.py``, ``CCSSL/options/train_options.py``,
``TRAINING.md``; written for synthetic -> real *animals*):

* training runs in **rounds** (60 epochs; new pseudo-labels every 10): at the start of a
  round the current model labels every target training image;
* **equivariance / invariance consistency**: a label is the argmax of the model's heatmaps
  averaged over 5 views of the image (the first unchanged; the others scaled by
  N(1, 0.25) clipped to [0.75, 1.25] and rotated by N(0, 30°) clipped to ±60°), each
  warped back to the image before averaging; its confidence is the maximum of that
  average, so keypoints whose views disagree get a low confidence;
* **temporal consistency**: images are visited in order; the previous image's label is
  carried to the current image by optical flow (pyramidal Lucas-Kanade, 15 px window);
  a flow that moved more than 15 px is not trusted; where the current confidence is
  below 0.9 x the carried label's, the carried label replaces it, with confidence
  x 0.9;
* **curriculum**: only labels above a global confidence quantile are kept (binary weight),
  the kept share growing per round: 1 - p with p = 1 - 0.02 (epoch + 10), p >= 0.2 — 20 %,
  40 %, 60 %, then 80 % of all (image, keypoint) labels;
* the loss is the source loss + 10 x the target loss on the kept labels (MSE heatmaps,
  sigma 1), target images augmented; RMSprop, lr 2.5e-4, batch 6; a stacked hourglass
  trained on synthetic images with strong augmentation is the start.

Our choices where the code is silent for hands and bodies (each a config field):
* the start is the series' ``source_only`` model (same network as the other systems);
* the temporal predecessor of an image is the previous frame of *its own* sequence
  (``split.pairs(1)``), not simply the previous image of the loader;
* the flow is **block matching** on grey images (best sum of squared differences of a
  ``flow_window`` patch within ±``flow_max_px``), instead of OpenCV's Lucas-Kanade, because
  the project does not depend on OpenCV; the search radius is the 15 px trust limit;
* views also get colour jitter (appearance invariance) besides scale and rotation;
* heatmaps of spatial-softmax (KL) nets are averaged as probabilities (softmax first);
* rounds, epochs per round, batch and the target weight are sized per run mode
  (``presets._ccssl``); kept shares follow ``keep_start + round x keep_step``, capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..data.benchmark import BenchmarkData
from ..data.datasets import KeypointDataset, TargetConfig
from ..data.transforms import affine_matrix, color_jitter, invert_affine, warp_images
from ..errors import ConfigError
from ..eval.evaluate import evaluate_pck
from ..keypoints import argmax_2d
from ..models import build_pose_net
from ..synth.domains import task_skeleton
from ..train.cache import TrainResult
from ..train.loop import Box, LoopSpec, endless_batches, lr_of, run_epochs
from ..train.losses import build_loss
from ..train.precision import PRECISIONS, autocast, precision_name, resolve_precision
from ..train.step import checked_step
from ..train.supervised import SupervisedConfig
from .mean_teacher import warp_heatmaps


@dataclass(frozen=True)
class CCSSLConfig:
    """Everything that determines a CC-SSL model (defaults: the authors' values)."""

    method: str = "ccssl"
    seed: int = 0
    pretrain: SupervisedConfig = field(default_factory=SupervisedConfig)
    rounds: int = 6  # label generations (60 epochs / 10)
    epochs_per_round: int = 10
    iters_per_epoch: int = 0  # 0 = one pass over the target train split
    batch_size: int = 6
    optimizer: str = "rmsprop"  # rmsprop | adam
    lr: float = 2.5e-4
    target_weight: float = 10.0  # gamma_: weight of the target loss
    keep_start: float = 0.2  # kept share of labels in round 0
    keep_step: float = 0.2  # ... growing by this per round
    keep_max: float = 0.8
    views: int = 5  # the first unchanged
    view_scale: float = 0.25  # std of the scale, clipped to ±1 std
    view_rotation: float = 30.0  # std in degrees, clipped to ±2 std
    view_color_jitter: float = 0.25  # our choice: appearance invariance
    temporal: bool = True
    flow_window: int = 15  # px at 256 px, scaled with the image
    flow_max_px: float = 15.0  # px at 256 px: search radius and trust limit
    temporal_decay: float = 0.9
    label_batch_size: int = 64
    eval_batch_size: int = 256
    precision: str = "auto"

    def __post_init__(self):
        if self.method != "ccssl":
            raise ConfigError(f"CCSSLConfig.method must be 'ccssl', got {self.method!r}",
                              "build the config with presets.config_for('ccssl', ...)")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ConfigError(f"unknown ccssl optimizer {self.optimizer!r}", "use 'rmsprop' or 'adam'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown ccssl precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")
        if self.rounds < 1 or self.epochs_per_round < 1 or self.views < 1:
            raise ConfigError("ccssl rounds, epochs_per_round and views must be at least 1")
        if not 0 < self.keep_start <= self.keep_max <= 1 or self.keep_step < 0:
            raise ConfigError(f"ccssl kept shares must satisfy 0 < keep_start <= keep_max <= 1 and keep_step >= 0, "
                              f"got {self.keep_start}, {self.keep_max}, {self.keep_step}",
                              "use shares in (0, 1], e.g. 0.2, 0.2, 0.8")

    @property
    def task(self) -> str:
        return self.pretrain.task

    @property
    def epochs(self) -> int:
        return self.rounds * self.epochs_per_round


def kept_share(cfg: CCSSLConfig, round_: int) -> float:
    """The curriculum: the share of (image, keypoint) labels kept in round ``round_``."""
    return min(cfg.keep_max, cfg.keep_start + round_ * cfg.keep_step)


def keep_mask(conf: torch.Tensor, share: float) -> tuple[torch.Tensor, float]:
    """Keep the labels above the global (1 - share) quantile of ``conf`` (N, K): the mask
    and the threshold (the authors' ranking rule)."""
    flat = conf.flatten().sort().values
    if share >= 1.0:
        return torch.ones_like(conf, dtype=torch.bool), float("-inf")
    thresh = float(flat[min(len(flat) - 1, int((1.0 - share) * len(flat)))])
    return conf > thresh, thresh


# ----------------------------------------------------------------------------- labels


def _views(n: int, cfg: CCSSLConfig, size: int, gen: torch.Generator) -> torch.Tensor:
    """View affines (V, n, 2, 3): the identity first, then random scale and rotation."""
    out = [torch.eye(2, 3).expand(n, 2, 3).clone()]
    for _ in range(cfg.views - 1):
        s = (1 + cfg.view_scale * torch.randn(n, generator=gen)).clamp(1 - cfg.view_scale, 1 + cfg.view_scale)
        r = (cfg.view_rotation * torch.randn(n, generator=gen)).clamp(-2 * cfg.view_rotation, 2 * cfg.view_rotation)
        out.append(affine_matrix(r, s, torch.zeros(n, 2), torch.zeros(n, dtype=torch.bool), size))
    return torch.stack(out)


def _maps(out: torch.Tensor, loss: str) -> torch.Tensor:
    """Heatmaps in averageable units: probabilities for KL nets, raw for MSE nets."""
    if loss == "mse":
        return out.float()
    B, K, h, w = out.shape
    return F.softmax(out.float().flatten(2), -1).view(B, K, h, w)


@torch.no_grad()
def consistent_labels(model: torch.nn.Module, images: torch.Tensor, cfg: CCSSLConfig, loss: str,
                      gen: torch.Generator, device, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Equivariance/invariance-consistent labels of ``images`` (N, 3, S, S) uint8 or float:
    keypoints (N, K, 2) in image pixels and confidences (N, K): heatmaps of every view
    warped back to the image and averaged; argmax and maximum of the average."""
    was = model.training
    model.eval()
    coords, confs = [], []
    S = images.shape[-1]
    for start in range(0, len(images), cfg.label_batch_size):
        x = images[start:start + cfg.label_batch_size].to(device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        n = len(x)
        views = _views(n, cfg, S, gen).to(device)
        total = None
        for v in range(cfg.views):
            xv = x if v == 0 else color_jitter(warp_images(x, views[v]), cfg.view_color_jitter, gen)
            with autocast(device, dtype):
                out = model(xv)
            stride = S / out.shape[-1]
            maps = _maps(out, loss)
            back = maps if v == 0 else warp_heatmaps(maps, invert_affine(views[v]), stride)
            total = back if total is None else total + back
        avg = total / cfg.views
        c, conf = argmax_2d(avg)
        coords.append((c * stride).cpu())
        confs.append(conf.cpu())
    model.train(was)
    return torch.cat(coords), torch.cat(confs)


def previous_frames(split) -> torch.Tensor:
    """For every image, the index of the previous frame of its own sequence (−1 where
    none): from ``split.pairs(1)``, the pairs whose base frame comes first."""
    n = len(split.images)
    prev = torch.full((n,), -1, dtype=torch.long)
    if not hasattr(split, "pairs") or getattr(split, "frame", None) is None:
        return prev
    pairs = split.pairs(1)
    if len(pairs) == 0:
        return prev
    frame = torch.as_tensor(split.frame)
    fwd = pairs[frame[pairs[:, 0]] < frame[pairs[:, 1]]]
    prev[fwd[:, 1]] = fwd[:, 0]
    return prev


def _gray(images: torch.Tensor) -> torch.Tensor:
    x = images.float() / (255.0 if images.dtype == torch.uint8 else 1.0)
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def block_match(prev_images: torch.Tensor, cur_images: torch.Tensor, points: torch.Tensor,
                window: int, radius: int) -> torch.Tensor:
    """Track ``points`` (N, K, 2) px from ``prev_images`` to ``cur_images`` (N, 3, S, S):
    the displacement within ±``radius`` px whose ``window`` x ``window`` grey patch has the
    smallest sum of squared differences to the patch around the point."""
    a, b = _gray(prev_images), _gray(cur_images)
    N, _, H, W = a.shape
    K = points.shape[1]
    r = max(1, window // 2)
    o = torch.arange(-r, r + 1, dtype=torch.float32, device=points.device)
    patch = torch.stack(torch.meshgrid(o, o, indexing="xy"), -1).view(-1, 2)  # (P, 2)
    d = torch.arange(-radius, radius + 1, dtype=torch.float32, device=points.device)
    disp = torch.stack(torch.meshgrid(d, d, indexing="xy"), -1).view(-1, 2)  # (D, 2)
    scale = torch.tensor([2.0 / (W - 1), 2.0 / (H - 1)], device=points.device)

    def sample(img, xy):  # xy (N, K, M, 2) px -> (N, K, M)
        grid = (xy * scale - 1).view(N, K * xy.shape[2], 1, 2)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True).view(N, K, -1)

    p = points.float()
    tmpl = sample(a, p[:, :, None] + patch)  # (N, K, P)
    cand = (p[:, :, None, None] + disp[:, None] + patch[None]).view(N, K, -1, 2)  # (N, K, D*P, 2)
    vals = sample(b, cand).view(N, K, len(disp), len(patch))
    ssd = ((vals - tmpl[:, :, None]) ** 2).sum(-1)  # (N, K, D)
    best = ssd.argmin(-1)
    return p + disp[best]


def temporal_consistency(split, coords: torch.Tensor, conf: torch.Tensor, cfg: CCSSLConfig,
                         prev: torch.Tensor | None = None, device="cpu",
                         max_elements: float = 3e7) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Carry each image's predecessor's label forward by block matching where the image's
    own confidence is below ``temporal_decay`` x the predecessor's (the authors' rule),
    visiting frames in sequence order. Returns labels, confidences and how many changed.
    The matching runs on ``device`` in chunks of at most ``max_elements`` samples."""
    prev = previous_frames(split) if prev is None else prev
    coords, conf = coords.clone(), conf.clone()
    S = split.images.shape[-1]
    window = max(3, round(cfg.flow_window * S / 256))
    radius = max(1, round(cfg.flow_max_px * S / 256))
    # depth of each image in its chain: frames are final once their predecessor is
    depth = torch.zeros(len(prev), dtype=torch.long)
    has = prev >= 0
    for _ in range(len(prev)):
        new = torch.where(has, depth[prev.clamp_min(0)] + 1, torch.zeros_like(depth))
        if torch.equal(new, depth):
            break
        depth = new
    changed = 0
    per_image = coords.shape[1] * (2 * radius + 1) ** 2 * (2 * max(1, window // 2) + 1) ** 2
    chunk = int(max(1, min(256, max_elements // per_image)))
    for level in range(1, int(depth.max()) + 1 if len(depth) else 1):
        idx = torch.nonzero(depth == level).flatten()
        for start in range(0, len(idx), chunk):
            i = idx[start:start + chunk]
            p = prev[i]
            flow = block_match(split.images[p].to(device), split.images[i].to(device), coords[p].to(device),
                               window, radius).cpu()
            carry = conf[p]
            use = (carry > 0) & (conf[i] < cfg.temporal_decay * carry)
            coords[i] = torch.where(use[..., None], flow, coords[i])
            conf[i] = torch.where(use, carry * cfg.temporal_decay, conf[i])
            changed += int(use.sum())
    return coords, conf, changed


class _PseudoSplit:
    """Target training images with pseudo-labels: ``visible`` is the kept mask, so a
    KeypointDataset with ``label='visible'`` weights only kept labels."""

    def __init__(self, split, coords: torch.Tensor, kept: torch.Tensor):
        self.images = split.images
        self.keypoints = coords.float()
        self.visible = kept.float()
        self.keypoints3d = split.keypoints3d
        self.intrinsics = split.intrinsics

    def __len__(self):
        return len(self.images)


# ----------------------------------------------------------------------------- trainer


def _optimizer(model, cfg: CCSSLConfig):
    if cfg.optimizer == "rmsprop":  # the authors: momentum 0, weight decay 0
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_ccssl(cfg: CCSSLConfig, run_dir: str | Path, data: BenchmarkData, pretrained: TrainResult,
                device: torch.device | str = "cpu", log: Callable[[str], None] = print, show_progress: bool = True,
                on_iteration: Callable[[int, int], None] | None = None) -> TrainResult:
    """Adapt the source model with CC-SSL (or resume); returns the last epoch's model.
    Target labels are read only to report how many pseudo-labels are correct."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    pcfg = cfg.pretrain
    tag = f"[ccssl {cfg.task}]"
    sk = task_skeleton(cfg.task)
    source = data.dataset(pcfg.benchmark, pcfg.data, "source", "train", augment=True)
    target_split = data.split(pcfg.benchmark, "target", "train")
    val = data.dataset(pcfg.benchmark, pcfg.data, "target", "val")
    loss_name = pcfg.train.loss
    loss_fn = build_loss(loss_name)
    torch.manual_seed(cfg.seed)
    model = build_pose_net(pcfg.model, sk.num_joints).to(device)
    model.load_state_dict(pretrained.state_dict)
    optimizer = _optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 13)
    dtype = resolve_precision(cfg.precision, device)
    B = cfg.batch_size
    n_target = len(target_split.images)
    iters = cfg.iters_per_epoch or max(1, n_target // B)
    labels = Box(None)  # the current round's {"round", "coords", "kept", ...}
    prev = previous_frames(target_split) if cfg.temporal else None
    target_cfg = TargetConfig(pcfg.data.target.heatmap_size, pcfg.data.target.sigma, label="visible")
    its: dict = {}
    thresh_px = 0.05 * target_split.images.shape[-1]

    def make_labels(round_: int) -> dict:
        coords, conf = consistent_labels(model, target_split.images, cfg, loss_name, gen, device, dtype)
        changed = 0
        if cfg.temporal:
            coords, conf, changed = temporal_consistency(target_split, coords, conf, cfg, prev, device)
        share = kept_share(cfg, round_)
        kept, thresh = keep_mask(conf, share)
        ok = (coords - target_split.keypoints.float()).norm(dim=-1) < thresh_px  # monitoring only
        correct = float(ok[kept].float().mean()) if kept.any() else float("nan")
        log(f"{tag} round {round_ + 1}/{cfg.rounds}: labels of {n_target} images, kept {100 * float(kept.float().mean()):.0f}% "
            f"(target share {100 * share:.0f}%), {changed} carried by the temporal check, "
            f"{100 * correct:.0f}% of the kept within PCK@0.05")
        return {"round": round_, "coords": coords, "conf": conf, "kept": kept, "threshold": thresh,
                "share": float(kept.float().mean()), "correct": correct, "temporal_changed": changed}

    def begin_epoch(epoch: int) -> None:
        round_ = epoch // cfg.epochs_per_round
        if labels.value is None or labels.value["round"] != round_:
            labels.value = make_labels(round_)
        model.train()
        pseudo = KeypointDataset(_PseudoSplit(target_split, labels.value["coords"], labels.value["kept"]), sk,
                                 target_cfg, pcfg.data.augment)
        its["src"] = endless_batches(source, B, gen, device)
        its["tgt"] = endless_batches(pseudo, B, gen, device)

    def step(epoch: int, it: int) -> dict:
        src, tgt = next(its["src"]), next(its["tgt"])
        with autocast(device, dtype):
            out_s = model(src["image"])
            out_t = model(tgt["image"])
        loss_s = loss_fn(out_s.float(), src["heatmaps"], src["weights"])
        loss_t = loss_fn(out_t.float(), tgt["heatmaps"], tgt["weights"])
        loss = loss_s + cfg.target_weight * loss_t
        checked_step(loss, optimizer, f"{tag} the loss", f"at epoch {epoch + 1}, iteration {it + 1}",
                     f"lower lr (now {cfg.lr}); finished epochs are kept in {run_dir / 'progress.pt'}")
        return {"loss_src": loss_s.item(), "loss_tgt": loss_t.item()}

    def end_epoch(epoch: int, record: dict) -> dict:
        lab = labels.value
        return {"val_pck": evaluate_pck(model, val, cfg.eval_batch_size, device).all, "lr": lr_of(optimizer),
                "round": lab["round"] + 1, "kept_share": lab["share"], "label_correct": lab["correct"],
                "temporal_changed": lab["temporal_changed"]}

    def describe(r: dict) -> str:
        return (f"round {r['round']}  loss {r['loss_src']:.3f} + {cfg.target_weight:g} x {r['loss_tgt']:.3f}  "
                f"kept {100 * r['kept_share']:.0f}%  val PCK {r['val_pck']:5.1f}")

    spec = LoopSpec(tag, cfg.method, cfg, run_dir, cfg.epochs, iters, 2 * B, header={"precision": precision_name(dtype)})
    history = run_epochs(spec, {"model": model, "optimizer": optimizer, "generator": gen, "labels": labels},
                         step, end_epoch, begin_epoch, describe=describe, log=log, show_progress=show_progress,
                         on_iteration=on_iteration)
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    metrics = {"val_pck": history[-1]["val_pck"], "kept_share": history[-1]["kept_share"]}
    return TrainResult(cfg.method, cfg, sd, history, metrics, run_dir)


def load_ccssl(result: TrainResult, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The adapted pose net of a CC-SSL :class:`TrainResult`, in eval mode."""
    cfg = result.config
    model = build_pose_net(cfg.pretrain.model, task_skeleton(cfg.task).num_joints)
    model.load_state_dict(result.state_dict)
    return model.to(device).eval()


__all__ = ["CCSSLConfig", "block_match", "consistent_labels", "keep_mask", "kept_share", "load_ccssl",
           "previous_frames", "temporal_consistency", "train_ccssl"]
