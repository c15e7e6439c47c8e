"""Training StyleNet f_sty on the benchmark's images, and using it as an augmenter.

No ImageNet VGG can be downloaded here, so (our documented alternative to UniFrame's frozen
VGG-19) the encoder is learned from the benchmark itself in two phases:

1. **autoencoder**: encoder + decoder reconstruct source and target images (L1), so the
   encoder's features describe both domains;
2. **style decoder**: the encoder is frozen and the decoder learns AdaIN's objective
   (UniFrame's decoder pre-training): for a content and a style image from opposite domains
   (direction chosen with p = 0.5 per iteration, as UniFrame does) and alpha ~ U(0, 1), the
   re-encoded output should match the transferred features (content loss; at every level,
   where AdaIN uses the deepest only — with our small encoder that kept fine detail from
   blurring) and the style's channel mean/std at every level, weighted by alpha (style loss);
   UniFrame weighs style 0.1 against content, our small encoder's statistics need more
   (``style_weight``).

With ``StyleNetConfig.vgg_weights`` set, phase 1 trains only the decoder (the VGG stays
frozen), as UniFrame's setup would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.real import RealTaskConfig
from ..errors import ConfigError
from ..models.style_net import StyleNet, StyleNetConfig
from ..synth.benchmark import BenchmarkConfig
from .cache import TrainResult
from .loop import LoopSpec, run_epochs
from .precision import PRECISIONS, autocast, precision_name, resolve_precision
from .step import checked_step


@dataclass(frozen=True)
class StyleTrainConfig:
    """What determines a trained StyleNet: the task's images, the net and the schedule."""

    benchmark: BenchmarkConfig | RealTaskConfig  # its source and target train splits
    net: StyleNetConfig = field(default_factory=StyleNetConfig)
    seed: int = 0
    ae_iterations: int = 800
    style_iterations: int = 700
    batch_size: int = 16
    lr: float = 1e-3
    style_weight: float = 3.0
    checkpoint_every: int = 200  # iterations per epoch of the loop (about; each phase keeps its length)
    precision: str = "auto"  # auto | fp32 | bf16: autocast of the encoder and decoder (train/precision.py)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown StyleNet precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")

    @property
    def task(self) -> str:
        return self.benchmark.task


def _moments(f: torch.Tensor):
    return f.mean((2, 3)), f.std((2, 3)) + 1e-5


def style_losses(net: StyleNet, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor,
                 dtype: torch.dtype | None = None):
    """(content loss, style loss, output) of one style-transfer step. The encoder and decoder
    run under autocast ``dtype``; AdaIN's statistics and the losses in fp32."""
    dev = content.device
    with torch.no_grad(), autocast(dev, dtype):
        fc = [f.float() for f in net.encode(content)]
        fs = [f.float() for f in net.encode(style)]
    target = net.transfer_features(fc, fs, alpha)
    with autocast(dev, dtype):
        out = net.decode(target)
        fo = [f.float() for f in net.encode(out)]
    out = out.float()
    # content at every level (the deepest alone, as in AdaIN, lets fine detail blur away)
    content_loss = sum(F.mse_loss(o, t) for o, t in zip(fo, target)) / len(fo)
    a = alpha.view(-1, 1)
    style_loss = 0.0
    for o, s, c in zip(fo, fs, fc):
        (mo, so), (ms, ss), (mc, sc) = _moments(o), _moments(s), _moments(c)
        # the statistics alpha asks for: a blend of the style's and the content's
        style_loss = style_loss + F.mse_loss(mo, a * ms + (1 - a) * mc) + F.mse_loss(so, a * ss + (1 - a) * sc)
    return content_loss, style_loss, out


def phase_epochs(iterations: int, every: int) -> tuple[int, int]:
    """(epochs, iterations per epoch) of a phase of ``iterations`` checkpointed about every
    ``every`` iterations: the fewest epochs of at most ``every`` iterations that divide the
    phase exactly (so the phase keeps its length)."""
    if iterations <= 0:
        return 0, 1
    epochs = -(-iterations // max(1, every))
    while iterations % epochs:
        epochs += 1
    return epochs, iterations // epochs


def train_style_net(cfg: StyleTrainConfig, run_dir, data, device="cpu", log=print, show_progress: bool = True,
                    on_iteration=None) -> TrainResult:
    """Train StyleNet: two phases (autoencoder, style decoder), each a resumable
    :func:`..train.loop.run_epochs` run of epochs of about ``checkpoint_every`` iterations
    (in ``run_dir``/autoencoder and ``run_dir``/style). ``on_iteration(it)`` gets the
    iteration counted over both phases."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    tag = f"[style_net {cfg.task}]"
    src = data.split(cfg.benchmark, "source", "train")
    tgt = data.split(cfg.benchmark, "target", "train")
    torch.manual_seed(cfg.seed)
    net = StyleNet(cfg.net).to(device)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    dtype = resolve_precision(cfg.precision, device)

    def batch(split):
        idx = torch.randint(len(split), (cfg.batch_size,), generator=gen)
        return split.images[idx].to(device).float().div_(255.0)

    def ae_step(epoch: int, it: int) -> dict:
        x = torch.cat([batch(src), batch(tgt)])
        with autocast(device, dtype):
            recon = net.decode(net.encode(x))
        loss = F.l1_loss(recon.float(), x)
        checked_step(loss, opt, f"{tag} the loss", f"at epoch {epoch + 1}, iteration {it + 1} of the autoencoder",
                     f"lower lr (now {cfg.lr}); finished epochs are kept in {run_dir}")
        return {"reconstruction": loss.item()}

    def style_step(epoch: int, it: int) -> dict:
        a, b = batch(src), batch(tgt)
        content, style = (a, b) if torch.rand((), generator=gen) < 0.5 else (b, a)
        alpha = torch.rand(cfg.batch_size, generator=gen).to(device)
        lc, ls, _ = style_losses(net, content, style, alpha, dtype)
        checked_step(lc + cfg.style_weight * ls, opt, f"{tag} the loss",
                     f"at epoch {epoch + 1}, iteration {it + 1} of the style decoder",
                     f"lower lr (now {cfg.lr}); finished epochs are kept in {run_dir}")
        return {"content": lc.item(), "style": float(ls.detach())}

    history: list[dict] = []
    done = 0
    phases = (("autoencoder", cfg.ae_iterations, ae_step), ("style", cfg.style_iterations, style_step))
    for phase, n_iter, step in phases:
        if n_iter <= 0:
            continue
        if phase == "style":  # freeze the encoder, train the decoder for style
            opt = _decoder_optimizer(net, cfg)
        else:
            opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
        epochs, iters = phase_epochs(n_iter, cfg.checkpoint_every)
        spec = LoopSpec(f"{tag} {phase}", "style_net", cfg, run_dir / phase, epochs, iters, cfg.batch_size,
                        header={"phase": phase, "precision": precision_name(dtype)})

        def at(e, i, offset=done, iters=iters):
            if on_iteration is not None:
                on_iteration(offset + e * iters + i)

        def end_epoch(e, record, offset=done, iters=iters):
            return {"iteration": offset + (e + 1) * iters}

        def describe(r):
            return "  ".join(f"{k} {r[k]:.4f}" for k in ("reconstruction", "content", "style") if k in r)

        history += run_epochs(spec, {"net": net, "optimizer": opt, "generator": gen}, step, end_epoch,
                              begin_epoch=lambda e: net.train(), describe=describe, log=log,
                              show_progress=show_progress, on_iteration=at)
        done += n_iter
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return TrainResult("style_net", cfg, state, history, dict(history[-1]) if history else {}, run_dir)


def _decoder_optimizer(net: StyleNet, cfg: StyleTrainConfig):
    for p in net.encoder_levels.parameters():
        p.requires_grad_(False)
    params = list(net.decoder_levels.parameters()) + list(net.to_rgb.parameters())
    return torch.optim.Adam(params, lr=cfg.lr)


def load_style_net(result: TrainResult, device="cpu") -> StyleNet:
    """The trained StyleNet of a TrainResult: eval mode, frozen (a fixed augmenter)."""
    net = StyleNet(result.config.net)
    net.load_state_dict(result.state_dict)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device).eval()


@torch.no_grad()
def stylize(style_net: StyleNet, content: torch.Tensor, style: torch.Tensor, alpha_range: tuple[float, float],
            prob: float, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
            features: dict | None = None) -> tuple[torch.Tensor, bool]:
    """UniFrame's per-batch style augmentation: with probability ``prob`` the whole batch
    is restyled towards ``style`` (matched image by image) with alpha ~ U(alpha_range),
    else returned unchanged. Returns (images, whether it was restyled).

    The encoder and decoder run under autocast ``dtype`` (AdaIN's statistics in fp32).
    ``features``: a dict shared by the calls of one step, so that an image batch used both
    as content and as style (s2t and t2s of the mean teacher) is encoded once."""
    if prob <= 0 or torch.rand((), generator=generator).item() >= prob:
        return content, False
    lo, hi = alpha_range
    alpha = lo + (hi - lo) * torch.rand((), generator=generator).item()
    if style.shape[0] != content.shape[0]:
        style = style[torch.arange(content.shape[0]) % style.shape[0]]
    style = style.to(content.device)
    cache = {} if features is None else features

    def encode(x):
        if id(x) not in cache:
            with autocast(x.device, dtype):
                cache[id(x)] = (x, [f.float() for f in style_net.encode(x)])  # x pinned: its id stays unique
        return cache[id(x)][1]

    mixed = style_net.transfer_features(encode(content), encode(style), alpha)
    with autocast(content.device, dtype):
        out = style_net.decode(mixed)
    return out.float().clamp(0, 1), True
