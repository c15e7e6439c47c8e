"""Geometric reconstruction in training: pairs, generator pre-training, diagnostics and the
reconstruction term of the adaptation (supplementary §A; where it is silent we follow FOMM,
https://github.com/AliaksandrSiarohin/first-order-model, and MRAA,
https://github.com/snap-research/articulated-animation).

Stages (the supplementary: "the generator is pre-trained with predicted keypoints before
applying the geometric reconstruction module"):

* **R1, generator pre-training** (stage ``generator``): a frozen pose net predicts keypoints
  on both images of every pair, and W + G learn to reconstruct the driving image from the
  base image and those keypoints (L_rec, Adam). *Our choice* of that pose net
  (``predictor``): the teacher of the adapted Baseline (our reading of supplementary §A's order:
  supervised pre-training, pseudo-labelling, then R1), not the source-trained model. On the
  benchmark's target images the source-trained model's keypoints are off by about 9 px at
  64 px, and a warp driven by them reconstructs worse than no warp at all; W + G trained
  under them learn to ignore keypoints. Pairs come from both domains (``domains``): target
  pairs teach G the target's appearance, source pairs a warp that follows the keypoints.
* **Diagnostics** (:func:`diagnose`), run on target validation pairs after every epoch and
  checked before the reconstruction loss is switched on: (1) L_rec with the predicted keypoints
  is clearly below L_rec with the identity warp (every region transform the identity, so D is
  the identity field for any mask); (2) L_rec rises
  monotonically when the driving keypoints are jittered by 1, 2, 4 px. A W + G that fails them
  gives the pose net no keypoint signal.
* **R2, +rec** (methods ``rec`` and ``pseudo_rec``): the mean teacher of the Baseline / +pseudo
  with λ_rec · L_rec added. **Gradient routing**: the driving keypoints come from the student
  (they carry the gradient), the base keypoints from the EMA teacher (detached), and every
  pair is used in both directions. W + G are fine-tuned at ``finetune_lr_mult`` × the pose
  net's learning rate (0 freezes them in eval mode). λ_rec ramps up linearly.

Pairs: frames of one sequence up to ``max_gap`` apart and other views of the same instant
(``split.pairs``); single images (no sequence) get a synthetic pair, a small random affine
warp of the same image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from ..data.transforms import affine_matrix, warp_images, warp_keypoints
from ..errors import TrainingError
from ..train.step import checked_step
from ..keypoints import local_soft_argmax
from ..models.reconstruction import Reconstructor
from ..recon import geometry as geo
from ..recon.losses import RecLossConfig, build_perceptual, reconstruction_loss
from ..synth.domains import task_skeleton
from ..train.cache import TrainResult
from ..train.loop import Box, LoopSpec, run_epochs
from ..train.precision import autocast, precision_name, resolve_precision
from ..train.supervised import SupervisedConfig
from .config import GEOMETRIC_METHODS, AdaptConfig, GeneratorTrainConfig, PairConfig, RecTermConfig  # noqa: F401



# ----------------------------------------------------------------------------- keypoints


def soft_keypoints(heatmaps: torch.Tensor, loss: str, stride: float, radius: int = 3) -> torch.Tensor:
    """Differentiable keypoints (B, K, 2) in image pixels from pose-net outputs: local
    soft-argmax of the unit-peak maps (MSE nets) or of the spatial softmax (KL nets, whose
    outputs are logits)."""
    maps = heatmaps.float()
    if loss == "kl":
        B, K, h, w = maps.shape
        maps = torch.softmax(maps.flatten(2), -1).view(B, K, h, w)
    return local_soft_argmax(maps, radius) * stride


@torch.no_grad()
def predict_keypoints(model: torch.nn.Module, images, loss: str, stride: float, batch_size: int = 256,
                      device="cpu", radius: int = 3) -> torch.Tensor:
    """Soft-argmax keypoints (N, K, 2), image pixels, of a frozen pose net on uint8 images."""
    was = model.training
    model.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size].to(device).float().div_(255.0)
        out.append(soft_keypoints(model(x), loss, stride, radius).cpu())
    model.train(was)
    return torch.cat(out)


# ----------------------------------------------------------------------------- pairs


class PairTable:
    """Partners of every image of a split (from ``split.pairs(max_gap)``), padded with −1."""

    def __init__(self, split, max_gap: int):
        n = len(split)
        pairs = split.pairs(max_gap) if hasattr(split, "pairs") else torch.zeros(0, 2, dtype=torch.long)
        self.pairs = pairs
        count = torch.bincount(pairs[:, 0], minlength=n) if len(pairs) else torch.zeros(n, dtype=torch.long)
        width = int(count.max()) if len(pairs) else 0
        self.table = torch.full((n, max(width, 1)), -1, dtype=torch.long)
        if len(pairs):
            order = torch.argsort(pairs[:, 0], stable=True)
            p = pairs[order]
            start = torch.cumsum(count, 0) - count
            slot = torch.arange(len(p)) - start[p[:, 0]]
            self.table[p[:, 0], slot] = p[:, 1]
        self.count = count

    def __len__(self) -> int:
        return len(self.pairs)

    def partners(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random partner of each image in ``idx`` (−1 where it has none)."""
        c = self.count[idx]
        pick = (torch.rand(len(idx), generator=generator) * c.clamp_min(1)).floor().long()
        out = self.table[idx, pick.clamp_max(self.table.shape[1] - 1)]
        return torch.where(c > 0, out, torch.full_like(out, -1))


def synthetic_affines(n: int, cfg: PairConfig, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Small random affines (n, 2, 3), pixels, for single-image pairs."""
    def u(lo, hi, shape=(n,)):
        return lo + (hi - lo) * torch.rand(shape, generator=generator)

    return affine_matrix(u(-cfg.synthetic_rotation, cfg.synthetic_rotation),
                         torch.exp(u(-cfg.synthetic_scale, cfg.synthetic_scale)),
                         u(-cfg.synthetic_translate, cfg.synthetic_translate, (n, 2)) * size,
                         torch.zeros(n, dtype=torch.bool), size)


def crop_motion(split, driving_idx: torch.Tensor, base_idx: torch.Tensor, size: int) -> torch.Tensor:
    """The crop-to-crop motion (B, 2, 3), pixels, mapping a driving-crop pixel to the
    base-crop pixel that shows the same frame pixel — what the background does between two
    crops of one static camera. From the crop boxes (x0, y0, side) and the convention of
    :mod:`srpose_lib.data.crops` (mirrored crops included); NaN where the two images do not
    share a camera (another view or sequence, or no boxes)."""
    B = len(driving_idx)
    nan = torch.full((B, 2, 3), float("nan"))
    boxes = getattr(split, "boxes", None)
    if boxes is None:
        return nan
    bd, bb = boxes[driving_idx].double(), boxes[base_idx].double()
    a = bd[:, 2] / bb[:, 2]
    tx = 0.5 * a + (bd[:, 0] - bb[:, 0]) * size / bb[:, 2] - 0.5
    ty = 0.5 * a + (bd[:, 1] - bb[:, 1]) * size / bb[:, 2] - 0.5
    zero = torch.zeros_like(a)
    m = torch.stack([torch.stack([a, zero, tx], -1), torch.stack([zero, a, ty], -1)], 1)
    flipped = getattr(split, "flipped", None)
    if flipped is not None:
        mirror = torch.tensor([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]], dtype=m.dtype).expand(B, 2, 3)
        fd, fb = flipped[driving_idx].bool(), flipped[base_idx].bool()
        from ..data.transforms import compose_affine

        m = torch.where(fd[:, None, None], compose_affine(m, mirror), m)
        m = torch.where(fb[:, None, None], compose_affine(mirror, m), m)
    seq = split.sequence
    same = (seq[driving_idx] == seq[base_idx]) & (seq[driving_idx] >= 0)
    view = getattr(split, "view", None)
    if view is not None:
        same &= view[driving_idx] == view[base_idx]
    same &= torch.isfinite(m).all(-1).all(-1)
    return torch.where(same[:, None, None], m.float(), nan)


def pair_batch(split, table: PairTable, idx: torch.Tensor, cfg: PairConfig, generator, device,
               keypoints: torch.Tensor | None = None) -> dict:
    """Images (B, 3, S, S) in [0, 1] of driving images ``idx`` and their base partners;
    images without a partner get a synthetic base (a small affine warp of themselves).
    ``background`` (B, 2, 3) is the known crop-to-crop motion (:func:`crop_motion`; the
    synthetic warp for synthetic bases). With ``keypoints`` (N, K, 2) (precomputed
    predictions) also ``p_base``/``p_driving`` (the synthetic bases' keypoints moved by
    their warp)."""
    partner = table.partners(idx, generator)
    real = partner >= 0
    driving = split.images[idx].to(device).float().div_(255.0)
    base_idx = torch.where(real, partner, idx)
    base = split.images[base_idx].to(device).float().div_(255.0)
    S = driving.shape[-1]
    m = synthetic_affines(len(idx), cfg, S, generator).to(device)
    synth = ~real.to(device)
    if synth.any():
        base = torch.where(synth[:, None, None, None], warp_images(driving, m, padding_mode="border"), base)
    background = torch.where(synth[:, None, None].cpu(), m.cpu(), crop_motion(split, idx, base_idx, S)).to(device)
    out = {"base": base, "driving": driving, "synthetic": synth, "affine": m, "base_index": base_idx.to(device),
           "background": background}
    if keypoints is not None:
        pd = keypoints[idx].to(device)
        pb = keypoints[base_idx].to(device)
        out["p_driving"] = pd
        out["p_base"] = torch.where(synth[:, None, None], warp_keypoints(pd, m), pb)
    return out


# ----------------------------------------------------------------------------- R1


def build_recon(cfg: GeneratorTrainConfig) -> Reconstructor:
    return Reconstructor(cfg.net, task_skeleton(cfg.task))


def _stride(pcfg: SupervisedConfig) -> float:
    return pcfg.benchmark.image_size / pcfg.data.target.heatmap_size


def train_generator(cfg: GeneratorTrainConfig, run_dir: str | Path, data, predictor: torch.nn.Module,
                    device: torch.device | str = "cpu", log: Callable[[str], None] = print,
                    show_progress: bool = True, on_iteration: Callable[[int, int], None] | None = None) -> TrainResult:
    """Pre-train W + G (resumable per epoch, :func:`..train.loop.run_epochs`) with the
    keypoints of the frozen pose net ``predictor``. Returns their weights; ``history`` holds
    per epoch the training loss and the diagnostics on fixed target validation pairs
    (epoch 0: before training), metrics the last epoch's diagnostics and whether they pass."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    tag = f"[generator {cfg.task}]"
    pcfg = cfg.pretrain
    stride = _stride(pcfg)
    pose = predictor.to(device).eval()
    splits = {d: data.split(pcfg.benchmark, d, "train") for d in cfg.domains}
    val = data.split(pcfg.benchmark, "target", "val")
    log(f"{tag} predicting the keypoints of the training pairs with the frozen predictor")
    kps = {d: predict_keypoints(pose, s.images, pcfg.train.loss, stride, pcfg.train.eval_batch_size, device,
                                cfg.keypoint_radius) for d, s in splits.items()}
    tables = {d: PairTable(s, cfg.pairs.max_gap) for d, s in splits.items()}
    diag = diagnostic_pairs(val, pose, cfg, stride, device)

    torch.manual_seed(cfg.seed)
    net = build_recon(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, int(0.75 * cfg.epochs))], 0.1)
    perceptual = build_perceptual(cfg.loss)
    perceptual = perceptual.to(device) if perceptual is not None else None
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    dtype = resolve_precision(cfg.precision, device)
    untrained = Box(None)  # epoch 0: the untrained W + G (its keypoint prior alone), for the curves
    progress_path = run_dir / "progress.pt"
    domains = list(cfg.domains)

    def begin_epoch(epoch: int) -> None:
        if untrained.value is None:
            untrained.value = {"epoch": 0, "loss": None, "seconds": 0.0, **diagnose(net, diag, cfg, perceptual)}
        net.train()

    def step(epoch: int, it: int) -> dict:
        parts = []
        for j, d in enumerate(domains):  # the batch is split evenly between the domains
            n = cfg.batch_size // len(domains) + (1 if j < cfg.batch_size % len(domains) else 0)
            idx = torch.randint(len(splits[d]), (n,), generator=gen)
            parts.append(pair_batch(splits[d], tables[d], idx, cfg.pairs, gen, device, kps[d]))
        b = {k: torch.cat([p[k] for p in parts]) for k in ("base", "driving", "p_base", "p_driving", "background")}
        with autocast(device, dtype):
            out = net(b["base"], b["p_base"], b["p_driving"], b["background"])
        loss = reconstruction_loss(out["prediction"].float(), b["driving"], cfg.loss, perceptual)
        checked_step(loss, opt, f"{tag} the reconstruction loss", f"at epoch {epoch + 1}",
                     f"lower generator lr (now {cfg.lr}); finished epochs are kept in {progress_path}")
        return {"loss": loss.item()}

    def end_epoch(epoch: int, record: dict) -> dict:
        sched.step()
        return diagnose(net, diag, cfg, perceptual)

    def describe(r: dict) -> str:
        return (f"loss {r['loss']:.4f}  val: predicted {r['loss_predicted']:.4f} / identity {r['loss_identity']:.4f}"
                f" = {r['ratio']:.2f} (static subject {r['loss_static']:.4f})  jitter "
                + " ".join(f"{j:g}px {v:.4f}" for j, v in zip(cfg.jitters, r["loss_jitter"]))
                + f"  (ground truth {r['loss_truth']:.4f})  {'passes' if r['passes'] else 'FAILS'}")

    spec = LoopSpec(tag, "generator", cfg, run_dir, cfg.epochs, cfg.iters_per_epoch, cfg.batch_size,
                    header={"precision": precision_name(dtype)})
    history = run_epochs(spec, {"model": net, "optimizer": opt, "scheduler": sched, "generator": gen,
                                "untrained": untrained}, step, end_epoch, begin_epoch, describe=describe, log=log,
                         show_progress=show_progress, on_iteration=on_iteration)
    history = [untrained.value] + history
    last = history[-1]
    metrics = {k: last[k] for k in ("loss", "loss_predicted", "loss_identity", "ratio", "passes")}
    metrics["monotone"] = last["monotone"]
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return TrainResult("generator", cfg, state, history, metrics, run_dir)


def load_reconstructor(result: TrainResult, device="cpu") -> Reconstructor:
    """The pre-trained W + G of a generator :class:`TrainResult`, in eval mode."""
    net = build_recon(result.config)
    net.load_state_dict(result.state_dict)
    return net.to(device).eval()


# ----------------------------------------------------------------------------- diagnostics


def diagnostic_pairs(split, pose: torch.nn.Module, cfg: GeneratorTrainConfig, stride: float, device) -> dict:
    """A fixed set of target validation pairs with the pose net's predicted keypoints."""
    table = PairTable(split, cfg.pairs.max_gap)
    gen = torch.Generator().manual_seed(1234)
    idx = torch.randperm(len(split), generator=gen)[:cfg.diag_pairs]
    kp = predict_keypoints(pose, split.images, cfg.pretrain.train.loss, stride, 256, device, cfg.keypoint_radius)
    b = pair_batch(split, table, idx, cfg.pairs, gen, device, kp)
    b["truth_driving"] = split.keypoints[idx].float().to(device)
    b["truth_base"] = torch.where(b["synthetic"][:, None, None], warp_keypoints(b["truth_driving"], b["affine"]),
                                  split.keypoints[b["base_index"].cpu()].float().to(device))
    b["jitter_seed"] = 99
    return b


@torch.no_grad()
def diagnose(net: Reconstructor, pairs: dict, cfg: GeneratorTrainConfig, perceptual=None, batch_size: int = 64) -> dict:
    """The two diagnostics on fixed pairs, with W + G in eval mode: L_rec with the predicted
    keypoints, with the identity warp (D = identity), the ratio of the two, with a static
    subject (driving keypoints := base keypoints: only the crop moves), L_rec under driving-keypoint jitter of each of ``cfg.jitters`` px, and whether
    (1) ratio < ``max_ratio`` and (2) the jitter curve rises monotonically from 0 px."""
    was = net.training
    net.eval()
    S = pairs["base"].shape[-1]

    def loss_with(p_driving, p_base=None, identity=False):
        p_base = pairs["p_base"] if p_base is None else p_base
        total = 0.0
        n = len(p_driving)
        for s in range(0, n, batch_size):
            sl = slice(s, s + batch_size)
            out = net(pairs["base"][sl], p_base[sl], p_driving[sl], pairs["background"][sl], identity=identity)
            total += float(reconstruction_loss(out["prediction"], pairs["driving"][sl], cfg.loss, perceptual,
                                               reduction="none").sum())
        return total / n

    pd = pairs["p_driving"]
    predicted = loss_with(pd)
    identity = loss_with(pd, identity=True)
    static = loss_with(pairs["p_base"])  # the subject does not move, only the crop
    gen = torch.Generator().manual_seed(pairs["jitter_seed"])
    jittered = [loss_with(normal_jitter(pd, j, gen)) for j in cfg.jitters]
    curve = [predicted] + jittered
    monotone = all(b > a for a, b in zip(curve, curve[1:]))
    ratio = predicted / max(identity, 1e-12)
    out = {"loss_predicted": predicted, "loss_identity": identity, "loss_static": static, "ratio": ratio,
           "ratio_static": predicted / max(static, 1e-12), "loss_jitter": jittered,
           "monotone": monotone, "passes": bool(monotone and ratio < cfg.max_ratio)}
    if "truth_base" in pairs:  # analysis only: the same W + G driven by ground-truth keypoints
        out["loss_truth"] = loss_with(pairs["truth_driving"], pairs["truth_base"])
    net.train(was)
    return out


def normal_jitter(keypoints_px: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Keypoints (B, K, 2) each moved by exactly ``pixels`` px in a random direction."""
    angle = torch.rand(keypoints_px.shape[:-1], generator=generator).to(keypoints_px.device) * (2 * math.pi)
    return keypoints_px + pixels * torch.stack([torch.cos(angle), torch.sin(angle)], -1)


# ----------------------------------------------------------------------------- R2


class RecTerm:
    """λ_rec · L_rec of one adaptation iteration, with its own W + G optimiser."""

    def __init__(self, cfg: AdaptConfig, net: Reconstructor, split, pose_lr: float, device,
                 dtype: torch.dtype | None = None):
        self.cfg = cfg
        self.rc = cfg.rec
        self.dtype = dtype  # autocast of the pose net's and W + G's forward passes (None: fp32)
        self.net = net.to(device)
        self.split = split
        self.table = PairTable(split, cfg.generator.pairs.max_gap)
        self.device = device
        pcfg = cfg.pretrain
        self.stride = _stride(pcfg)
        self.loss_name = pcfg.train.loss
        self.finetune = self.rc.finetune_lr_mult > 0
        for p in net.parameters():
            p.requires_grad_(self.finetune)
        self.opt = torch.optim.Adam(net.parameters(), lr=pose_lr * self.rc.finetune_lr_mult,
                                    betas=(0.5, 0.999)) if self.finetune else None
        perceptual = build_perceptual(cfg.generator.loss)
        self.perceptual = perceptual.to(device) if perceptual is not None else None
        # instrument (analysis only): when ``probe`` is set, the next :meth:`loss` measures for the
        # student's driving keypoints whether -dL_rec/dp points towards the ground truth
        self.probe = False
        self.last_probe: dict | None = None

    def weight(self, step: int) -> float:
        ramp = min(1.0, (step + 1) / self.rc.ramp_iters) if self.rc.ramp_iters > 0 else 1.0
        return self.rc.weight * ramp

    def loss(self, student, teacher, idx: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """L_rec on ``batch_size`` pairs of target images ``idx`` used both ways, and the
        student's heatmaps it differentiates (for the gradient-ratio log)."""
        self.net.train(self.finetune)
        idx = idx[:self.rc.batch_size].cpu()
        b = pair_batch(self.split, self.table, idx, self.cfg.generator.pairs, generator, self.device)
        images = torch.cat([b["base"], b["driving"]])
        with autocast(self.device, self.dtype):
            heat = student(images).float()
        p_student = soft_keypoints(heat, self.loss_name, self.stride, self.rc.keypoint_radius)
        with torch.no_grad(), autocast(self.device, self.dtype):
            t_heat = teacher(images).float()
        p_teacher = soft_keypoints(t_heat, self.loss_name, self.stride, self.rc.keypoint_radius)
        n = len(idx)
        base = torch.cat([b["base"], b["driving"]])
        driving = torch.cat([b["driving"], b["base"]])
        p_base = torch.cat([p_teacher[:n], p_teacher[n:]])
        p_driving = torch.cat([p_student[n:], p_student[:n]])
        bg = torch.cat([b["background"], invert_background(b["background"])])
        with autocast(self.device, self.dtype):
            out = self.net(base, p_base.detach(), p_driving, bg)
        loss = reconstruction_loss(out["prediction"].float(), driving, self.cfg.generator.loss, self.perceptual)
        if self.probe and p_driving.requires_grad:
            self.last_probe = self._grad_toward_gt(loss, p_driving, b, idx)
        if self.rc.equivariance > 0:
            loss = loss + self.rc.equivariance * self._equivariance(student, images, p_student, generator)
        return loss, heat

    def _grad_toward_gt(self, loss, p_driving, b: dict, idx: torch.Tensor) -> dict:
        """Shares of the driving keypoints whose -dL_rec/dp has a positive cosine with
        (ground truth - prediction), per joint group and error size (eval/instruments.py).
        The ground truth is read for this analysis only; it never enters the loss."""
        from ..eval.instruments import grad_toward_gt
        from ..synth.domains import task_skeleton

        grad = torch.autograd.grad(loss, p_driving, retain_graph=True)[0]
        kp = self.split.keypoints.float()
        gt_driving = kp[idx].to(self.device)
        base_idx = b["base_index"].cpu()
        gt_base = torch.where(b["synthetic"][:, None, None], warp_keypoints(gt_driving, b["affine"]),
                              kp[base_idx].to(self.device))
        gt = torch.cat([gt_driving, gt_base])  # p_driving = [driving images, base images]
        return grad_toward_gt(p_driving.detach(), grad, gt, task_skeleton(self.cfg.task))

    def _equivariance(self, student, images, keypoints, generator) -> torch.Tensor:
        from ..recon.losses import equivariance_loss

        a, S = self.rc.equivariance_affine, images.shape[-1]
        n = len(images)
        u = lambda shape=(n,): (2 * torch.rand(shape, generator=generator) - 1) * a  # noqa: E731
        tau = affine_matrix(u() * 90.0, torch.exp(u()), u((n, 2)) * S, torch.zeros(n, dtype=torch.bool), S)
        fn = lambda x: soft_keypoints(student(x).float(), self.loss_name, self.stride, self.rc.keypoint_radius)  # noqa: E731
        return equivariance_loss(fn, images, keypoints, tau.to(images.device))

    def step(self):
        """W + G's optimiser step (after the pose net's backward pass filled their gradients)."""
        if self.opt is not None:
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict() if self.opt else None}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        if self.opt is not None and state["opt"] is not None:
            self.opt.load_state_dict(state["opt"])


def invert_background(m: torch.Tensor) -> torch.Tensor:
    """The reverse direction's crop motion (NaN stays NaN)."""
    from ..data.transforms import invert_affine

    known = torch.isfinite(m).all(-1).all(-1)
    inv = invert_affine(torch.nan_to_num(m) + (~known)[:, None, None] * torch.eye(2, 3, device=m.device))
    return torch.where(known[:, None, None], inv, m)


def check_diagnostics(generator_result: TrainResult, cfg: AdaptConfig, strict: bool = True,
                      log: Callable[[str], None] = print) -> bool:
    """Gate +rec training on a W + G that gives the pose net a keypoint signal (A.2).

    A policy, not a hyperparameter (so not part of the hashed config): ``strict`` refuses to
    train on a W + G that fails; otherwise a loud warning, so that a run can show what a
    failing W + G does. Returns whether the diagnostics pass."""
    m = generator_result.metrics
    if m.get("passes", False):
        return True
    problem = (f"the pre-trained W + G of {cfg.task} fails its diagnostics (L_rec ratio to the identity warp "
               f"{m.get('ratio', float('nan')):.2f}, needs < {cfg.generator.max_ratio}; jitter curve monotone: "
               f"{generator_result.history[-1].get('monotone') if generator_result.history else None}): its "
               "reconstruction loss gives the pose net little or no keypoint signal")
    fix = ("a better predictor for its keypoints (GeneratorTrainConfig.predictor: an adapted teacher), a longer "
           "pre-training (generator.epochs / iters_per_epoch) when its loss still falls, or strict=False "
           "(notebook 05: REQUIRE_DIAGNOSTICS=False) to train anyway")
    if strict:
        raise TrainingError(problem, fix)
    log(f"WARNING: {problem}; training +rec anyway (strict=False): read its result as a check of the "
        "diagnostics, not of the method")
    return False


def head_weight(model: torch.nn.Module) -> torch.Tensor:
    """The pose net's last layer weight (the keypoint-gradient probe)."""
    return model.head.weight
