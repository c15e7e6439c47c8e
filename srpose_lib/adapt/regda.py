"""RegDA: regressive domain adaptation (Jiang et al., CVPR 2021), a comparison system of Fig A.

What it does (facts from Transfer-Learning-Library, ``tllib/alignment/regda.py`` and
``examples/domain_adaptation/keypoint_detection/regda.py``; https://github.com/thuml/Transfer-Learning-Library):

* **two regressor heads on one feature extractor** (backbone + upsampling): the *main* head
  predicts the keypoints; the *adversarial* head reads the same features through a
  gradient-scaling layer whose factor warms up from 0 to 0.1 over about a thousand
  iterations (``WarmStartGradientLayer``, lo 0, hi 0.1, alpha 1, 1000 iterations); each
  head is conv3x3-BN-ReLU + conv1x1 (``num_head_layers`` 2), weights N(0, 0.001);
* **pseudo-heatmaps from the main head's prediction** (no gradient): the *ground truth*
  of keypoint k is a unit-peak Gaussian at the main head's argmax of k; the *ground
  false* of k is the clipped sum of the other keypoints' Gaussians — every place a
  keypoint could be confused with, *except* k's own predicted peak;
* per iteration, three steps with the spatial-softmax KL loss (``JointsKLLoss``, epsilon
  1e-7 in the disparity):

  A. all parameters: source KL + margin x trade-off x KL(adversarial, ground truth) on source;
  B. **max step**, adversarial head only: trade-off x KL(adversarial, ground false) on target —
     the adversarial head is pulled *away* from the main prediction (towards the other
     keypoints), i.e. it maximises the disparity;
  C. **min step**, feature extractor only: trade-off x KL(adversarial, ground truth) on target —
     the features change so that even the adversarial head agrees with the main head.

* hyperparameters (``regda.py`` defaults and ``regda.sh``): SGD, momentum 0.9, weight decay
  1e-4, Nesterov; base learning rates 0.1 for the feature extractor and 1.0 for the heads,
  times ``lr * (1 + 1e-4 * it) ** -0.75`` with ``lr`` 0.1 (so 0.01 / 0.1 at the start),
  stepped every iteration; 30 epochs x 500 iterations of batch 32 (``--epochs 10`` for
  SURREAL->Human3.6M); margin 4, trade-off 1; stage 1 (the source model) 70 epochs x 500
  iterations, SGD 0.1 (backbone 0.01), drops x 0.1 at 45 and 60, KL loss, best epoch on the
  source validation split. Stage 2 loads only the stage-1 weights whose names it shares —
  backbone and upsampling; its two-layer heads differ from stage 1's single 1x1 head
  (``tllib/vision/models/keypoint_detection/pose_resnet.py``) and start new.

Our choices: the feature extractor starts from the series' ``source_only`` model (with the KL
loss; its optimiser is the series' ERM schedule, not TLL's stage-1 SGD); model selection is
none — the last epoch is the result, as for every adaptation method of the series (TLL
keeps the epoch with the best target-test PCK). Evaluation uses the main head (TLL does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..data.benchmark import BenchmarkData
from ..errors import ConfigError
from ..eval.evaluate import evaluate_pck
from ..keypoints import argmax_2d
from ..models import build_pose_net
from ..synth.domains import task_skeleton
from ..train.cache import TrainResult
from ..train.loop import LoopSpec, endless_batches, lr_of, run_epochs
from ..train.losses import JointsKLLoss
from ..train.precision import PRECISIONS, autocast, precision_name, resolve_precision
from ..train.step import checked_step
from ..train.supervised import SupervisedConfig


@dataclass(frozen=True)
class RegDATrainConfig:
    """Stage 2 of RegDA (TLL's defaults)."""

    epochs: int = 30
    iters_per_epoch: int = 500  # 0 = one pass over the target train split per epoch
    batch_size: int = 32
    lr: float = 0.1  # TLL --lr: multiplies the base rates below
    feature_lr: float = 0.1  # base rate of backbone + upsampling
    head_lr: float = 1.0  # base rate of each head
    lr_gamma: float = 1e-4  # lr * (1 + lr_gamma * it) ** -lr_decay, per iteration
    lr_decay: float = 0.75
    momentum: float = 0.9
    weight_decay: float = 1e-4
    margin: float = 4.0  # γ: weight of the source disparity term (x trade_off)
    trade_off: float = 1.0  # η: weight of the disparity terms
    head_layers: int = 2  # conv3x3-BN-ReLU blocks + 1 conv1x1 per head
    grad_hi: float = 0.1  # gradient-scaling layer: factor warms from grad_lo to grad_hi
    grad_lo: float = 0.0
    grad_alpha: float = 1.0
    grad_max_iters: int = 1000
    disparity_epsilon: float = 1e-7
    eval_batch_size: int = 256
    precision: str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown regda precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")
        if self.head_layers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("regda head_layers, epochs and batch_size must be at least 1")


@dataclass(frozen=True)
class RegDAConfig:
    """Everything that determines a RegDA model: its source model and stage 2."""

    method: str = "regda"
    seed: int = 0
    pretrain: SupervisedConfig = field(default_factory=SupervisedConfig)
    train: RegDATrainConfig = field(default_factory=RegDATrainConfig)

    def __post_init__(self):
        if self.method != "regda":
            raise ConfigError(f"RegDAConfig.method must be 'regda', got {self.method!r}",
                              "build the config with presets.config_for('regda', ...)")
        if self.pretrain.train.loss != "kl":
            raise ConfigError("RegDA starts from a source model trained with the spatial-softmax KL loss "
                              f"(its disparity is a KL), not {self.pretrain.train.loss!r}",
                              "set pretrain.train.loss='kl' (presets.config_for('regda', ...) does)")

    @property
    def task(self) -> str:
        return self.pretrain.task


# ----------------------------------------------------------------------------- model


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient times ``coeff`` backward (TLL's gradient layer)."""

    @staticmethod
    def forward(ctx, x, coeff: float):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.coeff, None


def warm_start(it: int, lo: float, hi: float, alpha: float, max_iters: int) -> float:
    """The gradient layer's factor at iteration ``it``: ``lo`` at 0, tending to ``hi``."""
    return float(2.0 * (hi - lo) / (1.0 + math.exp(-alpha * it / max_iters)) - (hi - lo) + lo)


def _make_head(layers: int, channels: int, num_keypoints: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers - 1):
        mods += [nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU()]
    mods.append(nn.Conv2d(channels, num_keypoints, 1))
    head = nn.Sequential(*mods)
    for m in head.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
            nn.init.zeros_(m.bias)
    return head


class RegDANet(nn.Module):
    """The pose net's feature extractor (normalisation, backbone, upsampling) with a main
    and an adversarial head. ``forward`` gives the main head's heatmaps, so the model is a
    drop-in pose net for evaluation; :meth:`both` gives (main, adversarial)."""

    def __init__(self, model_cfg, num_keypoints: int, head_layers: int = 2):
        super().__init__()
        net = build_pose_net(model_cfg, num_keypoints)
        self.config = model_cfg
        self.stride = net.stride
        self.num_keypoints = num_keypoints
        self.register_buffer("mean", net.mean.clone(), persistent=False)
        self.register_buffer("std", net.std.clone(), persistent=False)
        self.backbone = net.backbone
        self.upsampling = net.upsampling
        channels = model_cfg.deconv_channels[-1]
        self.head = _make_head(head_layers, channels, num_keypoints)
        self.head_adv = _make_head(head_layers, channels, num_keypoints)
        if model_cfg.channels_last:
            self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.upsampling(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).contiguous()

    def both(self, x: torch.Tensor, grad_coeff: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(main, adversarial) heatmaps; the adversarial head's gradient reaches the
        features times ``grad_coeff``."""
        f = self.features(x)
        return self.head(f).contiguous(), self.head_adv(_ScaleGrad.apply(f, grad_coeff)).contiguous()

    def feature_parameters(self):
        return list(self.backbone.parameters()) + list(self.upsampling.parameters())


def build_regda_net(cfg: RegDAConfig, pretrained_state: dict | None = None) -> RegDANet:
    """RegDANet for ``cfg``; with ``pretrained_state`` (a source pose net's weights) its
    backbone and upsampling start from them (the heads start new, as in TLL)."""
    model = RegDANet(cfg.pretrain.model, task_skeleton(cfg.task).num_joints, cfg.train.head_layers)
    if pretrained_state is not None:
        own = model.state_dict()
        shared = {k: v for k, v in pretrained_state.items()
                  if k.startswith(("backbone.", "upsampling.")) and k in own}
        missing = [k for k in own if k.startswith(("backbone.", "upsampling.")) and k not in shared]
        if missing:
            raise ConfigError(f"the source model lacks {len(missing)} feature weights (e.g. {missing[0]})",
                              "RegDA's pretrain config must describe the same network as its source model")
        model.load_state_dict(shared, strict=False)
    return model


# ----------------------------------------------------------------------------- losses


def pseudo_heatmaps(heatmaps: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth and ground-false heatmaps (B, K, h, w) from a prediction (no gradient).

    Ground truth of k: a unit-peak Gaussian (std ``sigma`` cells, cut at 3 sigma) at the
    argmax of k. Ground false of k: the sum of the *other* keypoints' ground truths,
    clipped to [0, 1] — it is zero at k's own predicted peak (unless another keypoint is
    predicted within 3 sigma of it)."""
    y = heatmaps.detach().float()
    h, w = y.shape[-2:]
    coords, _ = argmax_2d(y)  # (B, K, 2) cells, (x, y)
    xs = torch.arange(w, device=y.device, dtype=y.dtype)
    ys = torch.arange(h, device=y.device, dtype=y.dtype)
    dx = xs.view(1, 1, 1, w) - coords[..., 0, None, None]
    dy = ys.view(1, 1, h, 1) - coords[..., 1, None, None]
    g = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    g = g * ((dx.abs() <= 3 * sigma) & (dy.abs() <= 3 * sigma))
    ground_false = (g.sum(1, keepdim=True) - g).clamp(0.0, 1.0)
    return g, ground_false


def disparity(y: torch.Tensor, y_adv: torch.Tensor, sigma: float, mode: str,
              weight: torch.Tensor | None = None, epsilon: float = 1e-7) -> torch.Tensor:
    """RegDA's regression disparity: KL of the adversarial heatmaps to the main head's
    ground truth (``mode='min'``) or ground false (``mode='max'``)."""
    if mode not in ("min", "max"):
        raise ConfigError(f"unknown disparity mode {mode!r}", "use 'min' or 'max'")
    truth, false = pseudo_heatmaps(y, sigma)
    return JointsKLLoss(epsilon=epsilon)(y_adv.float(), truth if mode == "min" else false, weight)


class _Group:
    """Several optimisers stepped as one (for :func:`checked_step`)."""

    def __init__(self, *optimizers):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True):
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self):
        for o in self.optimizers:
            o.step()


@dataclass
class RegDAOptimizers:
    features: torch.optim.Optimizer
    head: torch.optim.Optimizer
    head_adv: torch.optim.Optimizer


def build_optimizers(model: RegDANet, t: RegDATrainConfig) -> RegDAOptimizers:
    def sgd(params, base):
        return torch.optim.SGD(params, lr=base, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)

    return RegDAOptimizers(sgd(model.feature_parameters(), t.feature_lr), sgd(model.head.parameters(), t.head_lr),
                           sgd(model.head_adv.parameters(), t.head_lr))


def source_step(model: RegDANet, opt: RegDAOptimizers, t: RegDATrainConfig, sigma: float, source: dict,
                coeff: float, device, dtype=None, where: str = "", fix: str = "") -> float:
    """Step A, every parameter: the supervised source loss plus margin x trade-off x the
    source disparity (the adversarial head learns to agree on source). Returns the
    supervised loss."""
    with autocast(device, dtype):
        y_s, y_s_adv = model.both(source["image"], coeff)
    loss_s = JointsKLLoss()(y_s.float(), source["heatmaps"], source["weights"])
    loss = loss_s + t.margin * t.trade_off * disparity(y_s, y_s_adv, sigma, "min", source["weights"],
                                                      t.disparity_epsilon)
    checked_step(loss, _Group(opt.features, opt.head, opt.head_adv), "[regda] the source loss", where, fix)
    return loss_s.item()


def max_step(model: RegDANet, opt: RegDAOptimizers, t: RegDATrainConfig, sigma: float, x_t: torch.Tensor,
             coeff: float, device, dtype=None, where: str = "", fix: str = "") -> float:
    """Step B, the adversarial head only: it maximises the disparity on target (pulled
    towards the ground false, away from the main head's prediction)."""
    with autocast(device, dtype):
        y_t, y_t_adv = model.both(x_t, coeff)
    loss = t.trade_off * disparity(y_t, y_t_adv, sigma, "max", None, t.disparity_epsilon)
    checked_step(loss, opt.head_adv, "[regda] the max-disparity loss", where, fix)
    return loss.item()


def min_step(model: RegDANet, opt: RegDAOptimizers, t: RegDATrainConfig, sigma: float, x_t: torch.Tensor,
             coeff: float, device, dtype=None, where: str = "", fix: str = "") -> float:
    """Step C, the feature extractor only: it minimises the disparity on target, so that
    even the adversarial head agrees with the main one (its gradient reaches the features
    through the gradient layer, times ``coeff``)."""
    with autocast(device, dtype):
        y_t, y_t_adv = model.both(x_t, coeff)
    loss = t.trade_off * disparity(y_t, y_t_adv, sigma, "min", None, t.disparity_epsilon)
    checked_step(loss, opt.features, "[regda] the min-disparity loss", where, fix)
    return loss.item()


def regda_step(model: RegDANet, opt: RegDAOptimizers, t: RegDATrainConfig, sigma: float, source: dict,
               x_t: torch.Tensor, coeff: float, device, dtype=None, where: str = "", fix: str = "") -> dict:
    """One RegDA iteration: steps A (source), B (max) and C (min). Returns the three losses."""
    args = (device, dtype, where, fix)
    return {"loss_src": source_step(model, opt, t, sigma, source, coeff, *args),
            "loss_false": max_step(model, opt, t, sigma, x_t, coeff, *args),
            "loss_truth": min_step(model, opt, t, sigma, x_t, coeff, *args)}


# ----------------------------------------------------------------------------- trainer


def train_regda(cfg: RegDAConfig, run_dir: str | Path, data: BenchmarkData, pretrained: TrainResult,
                device: torch.device | str = "cpu", log: Callable[[str], None] = print, show_progress: bool = True,
                on_iteration: Callable[[int, int], None] | None = None) -> TrainResult:
    """Adapt the source model with RegDA (or resume); returns the last epoch's RegDANet.
    Target images only — target labels are never read (the validation PCK is monitoring)."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    t = cfg.train
    pcfg = cfg.pretrain
    tag = f"[regda {cfg.task}]"
    source = data.dataset(pcfg.benchmark, pcfg.data, "source", "train", augment=True)
    target = data.dataset(pcfg.benchmark, pcfg.data, "target", "train", augment=True)
    val = data.dataset(pcfg.benchmark, pcfg.data, "target", "val")
    sigma = pcfg.data.target.sigma
    torch.manual_seed(cfg.seed)
    model = build_regda_net(cfg, pretrained.state_dict).to(device)
    opt = build_optimizers(model, t)
    decay = lambda it: t.lr * (1.0 + t.lr_gamma * it) ** (-t.lr_decay)  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt.features, opt.head, opt.head_adv)]
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    dtype = resolve_precision(t.precision, device)
    B = t.batch_size
    iters = t.iters_per_epoch or max(1, len(target) // B)
    its: dict = {}
    fix = (f"lower train.lr (now {t.lr}); finished epochs are kept in {run_dir / 'progress.pt'} "
           "and a new run resumes from them")

    def begin_epoch(epoch: int) -> None:
        model.train()
        its["src"] = endless_batches(source, B, gen, device)
        its["tgt"] = endless_batches(target, B, gen, device)

    def step(epoch: int, it: int) -> dict:
        src = next(its["src"])
        x_t = next(its["tgt"])["image"]  # images only
        coeff = warm_start(epoch * iters + it, t.grad_lo, t.grad_hi, t.grad_alpha, t.grad_max_iters)
        out = regda_step(model, opt, t, sigma, src, x_t, coeff, device, dtype,
                         f"at epoch {epoch + 1}, iteration {it + 1}", fix)
        for s in scheds:
            s.step()
        return out

    def end_epoch(epoch: int, record: dict) -> dict:
        return {"val_pck": evaluate_pck(model, val, t.eval_batch_size, device).all, "lr": lr_of(opt.features),
                "grad_coeff": warm_start((epoch + 1) * iters, t.grad_lo, t.grad_hi, t.grad_alpha, t.grad_max_iters)}

    def describe(r: dict) -> str:
        return (f"loss src {r['loss_src']:.3f}  false {r['loss_false']:.3f}  truth {r['loss_truth']:.3f}  "
                f"val PCK {r['val_pck']:5.1f}")

    spec = LoopSpec(tag, cfg.method, cfg, run_dir, t.epochs, iters, 2 * B, header={"precision": precision_name(dtype)})
    state = {"model": model, "opt_features": opt.features, "opt_head": opt.head, "opt_head_adv": opt.head_adv,
             "sched_features": scheds[0], "sched_head": scheds[1], "sched_head_adv": scheds[2], "generator": gen}
    history = run_epochs(spec, state, step, end_epoch, begin_epoch, describe=describe, log=log,
                         show_progress=show_progress, on_iteration=on_iteration)
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(cfg.method, cfg, sd, history, {"val_pck": history[-1]["val_pck"]}, run_dir)


def load_regda(result: TrainResult, device: torch.device | str = "cpu") -> RegDANet:
    """The adapted RegDANet of a :class:`TrainResult` (main head), in eval mode."""
    model = build_regda_net(result.config)
    model.load_state_dict(result.state_dict)
    return model.to(device).eval()
