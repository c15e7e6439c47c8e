"""Supervised training of the pose predictor f_kp: source-only and oracle.

* **source-only** trains on labelled source ("synthetic") images: the lower bound of
  domain adaptation, and the pre-training L_pre-train that the later stages start from.
* **oracle** trains on labelled target ("real") images: the upper bound.

Model selection uses the held-out **validation split of the training domain** (source val
for source-only, target val for the oracle), never the target test split. The baselines
(ERM, RegDA stage 2, UniFrame) keep the epoch with the best *target test* PCK; we do not.

The loop is resumable: after every epoch it writes ``progress.pt`` (model, optimiser,
scheduler, random-generator state, best weights, history) atomically, and a new call with
the same configuration continues after the last finished epoch. The per-epoch history is
also written as plain JSON (``history.json``) beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..data.datasets import DataConfig, KeypointDataset
from ..errors import ConfigError
from ..eval.evaluate import evaluate_pck
from ..models import ModelConfig, build_pose_net
from ..data.benchmark import BenchmarkData
from ..synth.benchmark import BenchmarkConfig, benchmark_config
from ..synth.domains import task_skeleton
from . import distributed
from .cache import TrainResult
from .loop import Box, LoopSpec, endless_batches, lr_of, run_epochs
from .losses import build_loss
from .precision import PRECISIONS, autocast, precision_name, resolve_precision
from .step import checked_step
from .style import StyleTrainConfig

STAGE_DOMAIN = {"source_only": "source", "oracle": "target", "pretrain": "source"}


@dataclass(frozen=True)
class StyleAugConfig:
    """UniFrame's style augmentation with StyleNet f_sty: source batches restyled towards
    target images (s2t) and, in the mean teacher, teacher inputs restyled towards source
    images (t2s), each with a probability per batch and alpha ~ U(range)."""

    s2t_prob: float = 0.5
    s2t_alpha: tuple[float, float] = (0.0, 1.0)
    t2s_prob: float = 0.5
    t2s_alpha: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule (defaults: TLL's ERM, Adam 1e-3, drops at 45 and 60 of 70)."""

    epochs: int = 70
    iters_per_epoch: int = 500  # 0 = one pass over the training split per epoch
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (45, 60)  # epochs at which lr *= lr_gamma
    lr_gamma: float = 0.1
    loss: str = "mse"  # mse (SimpleBaseline, UniFrame) | kl (RegDA)
    eval_batch_size: int = 256
    precision: str = "auto"  # auto | fp32 | bf16: autocast of the forward passes (train/precision.py)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown train.precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}", "use 'adam' or 'sgd'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be at least 1")


@dataclass(frozen=True)
class SupervisedConfig:
    """Everything that determines a source-only, pre-trained (source + style) or oracle model."""

    stage: str = "source_only"  # source_only | pretrain | oracle
    seed: int = 0
    benchmark: BenchmarkConfig = field(default_factory=lambda: benchmark_config("hand"))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    style: StyleTrainConfig | None = None  # StyleNet f_sty (stage 'pretrain' only)
    style_aug: StyleAugConfig = StyleAugConfig()

    def __post_init__(self):
        if (self.stage == "pretrain") != (self.style is not None):
            raise ConfigError("only the 'pretrain' stage restyles source images, and it needs a StyleNet config",
                              "build the config with presets.config_for")
        if self.stage not in STAGE_DOMAIN:
            raise ConfigError(f"unknown supervised stage {self.stage!r}",
                              f"use one of {', '.join(STAGE_DOMAIN)}")

    @property
    def task(self) -> str:
        return self.benchmark.task

    @property
    def domain(self) -> str:
        return STAGE_DOMAIN[self.stage]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=True)


@distributed.aware
def train_supervised(cfg: SupervisedConfig, run_dir: str | Path, data: BenchmarkData,
                     device: torch.device | str = "cpu", log: Callable[[str], None] = print,
                     show_progress: bool = True,
                     on_iteration: Callable[[int, int], None] | None = None,
                     style_net=None) -> TrainResult:
    """Train (or resume) a source-only / pre-trained / oracle pose net; returns the
    best-on-validation weights. ``style_net`` (stage 'pretrain'): with probability
    ``style_aug.s2t_prob`` a source batch takes the style of random target images.
    ``on_iteration(epoch, it)`` is called after every step (tests use it to simulate an
    interruption).

    Under ``torchrun`` (train/distributed.py) the model trains in DistributedDataParallel:
    every rank draws the same global batch and keeps its ``batch_size / N`` rows, rank 0
    evaluates and alone writes checkpoints and logs."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    dctx = distributed.context()
    rows = dctx.rows(cfg.train.batch_size)  # fails early when the batch does not split
    if not dctx.is_main:
        log = lambda s: None  # noqa: E731 - rank 0 alone logs
    tag = f"[{cfg.stage} {cfg.task}]"
    train_set = data.dataset(cfg.benchmark, cfg.data, cfg.domain, "train", augment=True)
    val_set = data.dataset(cfg.benchmark, cfg.data, cfg.domain, "val")
    K = train_set.skeleton.num_joints

    torch.manual_seed(cfg.seed)
    model = build_pose_net(cfg.model, K).to(device)
    hm = cfg.data.target.heatmap_size
    if cfg.benchmark.image_size // model.stride != hm:
        raise ConfigError(
            f"the network maps {cfg.benchmark.image_size} px images to "
            f"{cfg.benchmark.image_size // model.stride} px heatmaps, but data.target.heatmap_size is {hm}",
            "set data.target.heatmap_size = image_size / network stride, or change the network")
    net = distributed.wrap(model)  # DDP under torchrun, the model itself otherwise
    optimizer = build_optimizer(model, cfg.train)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.train.milestones), cfg.train.lr_gamma)
    loss_fn = build_loss(cfg.train.loss)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    best = Box({"val_pck": -1.0, "epoch": -1, "state_dict": None})
    dtype = resolve_precision(cfg.train.precision, device)
    if cfg.stage == "pretrain" and style_net is None:
        raise ConfigError("the 'pretrain' stage needs the trained StyleNet", "pass style_net=...")
    if style_net is not None:
        from .style import stylize

        style_refs = data.split(cfg.benchmark, "target", "train")
    iters = cfg.train.iters_per_epoch or math.ceil(len(train_set) / cfg.train.batch_size)
    progress_path = run_dir / "progress.pt"
    batches = None

    def begin_epoch(epoch: int) -> None:
        # a fresh shuffle per epoch, drawn from the generator as checkpointed after the last
        # epoch, so that a resumed run sees exactly the batches an uninterrupted one sees
        nonlocal batches
        batches = endless_batches(train_set, cfg.train.batch_size, gen, device)
        model.train()

    def step(epoch: int, it: int) -> dict:
        batch = next(batches)  # the global batch, identical on every rank
        images, heatmaps, weights = batch["image"][rows], batch["heatmaps"][rows], batch["weights"][rows]
        if style_net is not None:  # s2t: restyle towards random target images
            ref_idx = torch.randint(len(style_refs), (cfg.train.batch_size,), generator=gen)[rows]
            refs = style_refs.images[ref_idx].to(device).float().div_(255.0)
            with torch.no_grad():
                images, _ = stylize(style_net, images, refs, cfg.style_aug.s2t_alpha, cfg.style_aug.s2t_prob, gen,
                                    dtype)
        with autocast(device, dtype):
            out = net(images)
        loss = loss_fn(out.float(), heatmaps, weights)
        # the global batch's loss (the same on every rank) and a checksum of the data it saw:
        # sum of (index + 1) x (position in the global batch + 1), and of the pixels
        pos = torch.arange(cfg.train.batch_size, device=device)[rows] + 1
        sums = torch.stack([loss.detach().double() / dctx.world_size,
                            ((batch["index"][rows] + 1) * pos).sum().double(), images.detach().double().sum()])
        sums = dctx.sum(sums)
        mean_loss = sums[0]
        args = (optimizer, f"{tag} the loss", f"at epoch {epoch + 1}, iteration {it + 1}",
                f"lower train.lr (now {cfg.train.lr}); the finished epochs are kept in "
                f"{progress_path} and a new run resumes from them")
        if not torch.isfinite(mean_loss):  # every rank stops at the same iteration
            checked_step(mean_loss, *args)
        checked_step(loss, *args)
        loss_value, index_sum, pixel_sum = sums.tolist()  # one device sync
        return {"loss": loss_value, "data_index_sum": index_sum, "data_pixel_sum": pixel_sum}

    def end_epoch(epoch: int, record: dict) -> dict:
        scheduler.step()
        distributed.check_in_sync(model, tag)
        distributed.broadcast_buffers(model)  # rank 0's BN statistics everywhere: one model on every rank
        val_pck = evaluate_pck(model, val_set, cfg.train.eval_batch_size, device).all if dctx.is_main else None
        val_pck = dctx.broadcast(val_pck)
        if val_pck > best.value["val_pck"]:
            best.value = {"val_pck": val_pck, "epoch": epoch + 1,
                          "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        return {"val_pck": val_pck, "lr": lr_of(optimizer)}

    def describe(r: dict) -> str:
        return (f"loss {r['loss']:.4f}  val PCK {r['val_pck']:5.1f} "
                f"(best {best.value['val_pck']:.1f} @ {best.value['epoch']})")

    spec = LoopSpec(tag, cfg.stage, cfg, run_dir, cfg.train.epochs, iters, cfg.train.batch_size,
                    header={"precision": precision_name(dtype), "world_size": dctx.world_size,
                            **({"sync_batchnorm": dctx.sync_bn} if dctx.distributed else {})})
    history = run_epochs(spec, {"model": model, "optimizer": optimizer, "scheduler": scheduler,
                                "generator": gen, "best": best},
                         step, end_epoch, begin_epoch, describe=describe, log=log,
                         show_progress=show_progress, on_iteration=on_iteration,
                         is_main=dctx.is_main, barrier=distributed.barrier)
    metrics = {"best_epoch": best.value["epoch"], "val_pck": best.value["val_pck"]}
    return TrainResult(cfg.stage, cfg, best.value["state_dict"], history, metrics, run_dir)


def load_model(result: TrainResult, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The pose net of a :class:`TrainResult`, in eval mode on ``device``."""
    cfg = result.config
    model = build_pose_net(cfg.model, task_skeleton(cfg.task).num_joints)
    model.load_state_dict(result.state_dict)
    return model.to(device).eval()
