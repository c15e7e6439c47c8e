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

from ..models.style_net import StyleNet, StyleNetConfig
from ..utils import atomic_torch_save, progress
from .cache import FORMAT_VERSION, TrainResult, load_checkpoint
from .step import checked_step


@dataclass(frozen=True)
class StyleTrainConfig:
    """What determines a trained StyleNet: the task's images, the net and the schedule."""

    benchmark: object  # BenchmarkConfig (its source and target train splits)
    net: StyleNetConfig = field(default_factory=StyleNetConfig)
    seed: int = 0
    ae_iterations: int = 800
    style_iterations: int = 700
    batch_size: int = 16
    lr: float = 1e-3
    style_weight: float = 3.0
    checkpoint_every: int = 200

    @property
    def task(self) -> str:
        return self.benchmark.task


def style_config_for(mode: str, task: str) -> StyleTrainConfig:
    """Presets: seconds in smoke mode, ~2 minutes per task in quick mode on a 2-core CPU,
    a wider net at 256 px in full mode."""
    from ..presets import benchmark_for

    bench = benchmark_for(mode, task)
    if mode == "smoke":
        return StyleTrainConfig(bench, StyleNetConfig(widths=(8, 16, 32)), ae_iterations=6, style_iterations=6,
                                batch_size=4, checkpoint_every=4)
    if mode == "full":
        return StyleTrainConfig(bench, StyleNetConfig(widths=(32, 64, 128, 256)), ae_iterations=4000,
                                style_iterations=8000, batch_size=8)
    return StyleTrainConfig(bench)


def _moments(f: torch.Tensor):
    return f.mean((2, 3)), f.std((2, 3)) + 1e-5


def style_losses(net: StyleNet, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor):
    """(content loss, style loss, output) of one style-transfer step."""
    fc, fs = net.encode(content), net.encode(style)
    with torch.no_grad():
        fc = [f.detach() for f in fc]
        fs = [f.detach() for f in fs]
    target = net.transfer_features(fc, fs, alpha)
    out = net.decode(target)
    fo = net.encode(out)
    # content at every level (the deepest alone, as in AdaIN, lets fine detail blur away)
    content_loss = sum(F.mse_loss(o, t) for o, t in zip(fo, target)) / len(fo)
    a = alpha.view(-1, 1)
    style_loss = 0.0
    for o, s, c in zip(fo, fs, fc):
        (mo, so), (ms, ss), (mc, sc) = _moments(o), _moments(s), _moments(c)
        # the statistics alpha asks for: a blend of the style's and the content's
        style_loss = style_loss + F.mse_loss(mo, a * ms + (1 - a) * mc) + F.mse_loss(so, a * ss + (1 - a) * sc)
    return content_loss, style_loss, out


def train_style_net(cfg: StyleTrainConfig, run_dir, data, device="cpu", log=print, show_progress: bool = True,
                    on_iteration=None) -> TrainResult:
    """Train StyleNet (resumable every ``checkpoint_every`` iterations)."""
    device = torch.device(device)
    run_dir = Path(run_dir)
    src = data.split(cfg.benchmark, "source", "train")
    tgt = data.split(cfg.benchmark, "target", "train")
    torch.manual_seed(cfg.seed)
    net = StyleNet(cfg.net).to(device)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    total = cfg.ae_iterations + cfg.style_iterations
    history: list[dict] = []
    start = 0
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    path = run_dir / "progress.pt"
    if path.exists():
        ckpt = load_checkpoint(path, "style_net", cfg)
        net.load_state_dict(ckpt["net"])
        start, history = ckpt["iteration"], ckpt["history"]
        gen.set_state(ckpt["generator"])
        if start > cfg.ae_iterations:  # saved in phase 2 (at the switch it still holds phase 1's)
            opt = _decoder_optimizer(net, cfg)
        opt.load_state_dict(ckpt["optimizer"])
        log(f"[style_net {cfg.task}] resuming after iteration {start}/{total}")

    def batch(split):
        idx = torch.randint(len(split), (cfg.batch_size,), generator=gen)
        return split.images[idx].to(device).float().div_(255.0)

    running = {}
    for it in progress(range(start, total), desc=f"style_net {cfg.task}", disable=not show_progress):
        if it == cfg.ae_iterations:  # phase 2: freeze the encoder, train the decoder for style
            opt = _decoder_optimizer(net, cfg)
        if it < cfg.ae_iterations:
            x = torch.cat([batch(src), batch(tgt)])
            recon = net.decode(net.encode(x))
            loss = F.l1_loss(recon, x)
            parts = {"reconstruction": loss.item()}
        else:
            a, b = batch(src), batch(tgt)
            content, style = (a, b) if torch.rand((), generator=gen) < 0.5 else (b, a)
            alpha = torch.rand(cfg.batch_size, generator=gen).to(device)
            lc, ls, _ = style_losses(net, content, style, alpha)
            loss = lc + cfg.style_weight * ls
            parts = {"content": lc.item(), "style": float(ls.detach())}
        checked_step(loss, opt, f"[style_net {cfg.task}] the loss", f"at iteration {it + 1}",
                     f"lower lr (now {cfg.lr}); finished iterations are kept in {path}")
        for k, v in parts.items():
            running.setdefault(k, []).append(v)
        done = it + 1
        if done % cfg.checkpoint_every == 0 or done in (cfg.ae_iterations, total):
            history.append({"iteration": done, **{k: sum(v) / len(v) for k, v in running.items()}})
            running = {}
            log(f"[style_net {cfg.task}] iteration {done}/{total}  "
                + "  ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "iteration"))
            atomic_torch_save({"format_version": FORMAT_VERSION, "stage": "style_net", "config": _cfg(cfg),
                               "iteration": done, "net": net.state_dict(), "optimizer": opt.state_dict(),
                               "generator": gen.get_state(), "history": history}, path)
        if on_iteration is not None:
            on_iteration(it)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return TrainResult("style_net", cfg, state, history, dict(history[-1]) if history else {}, run_dir)


def _decoder_optimizer(net: StyleNet, cfg: StyleTrainConfig):
    for p in net.encoder_levels.parameters():
        p.requires_grad_(False)
    params = list(net.decoder_levels.parameters()) + list(net.to_rgb.parameters())
    return torch.optim.Adam(params, lr=cfg.lr)


def _cfg(cfg):
    from ..config import to_dict

    return to_dict(cfg)


def load_style_net(result: TrainResult, device="cpu") -> StyleNet:
    """The trained StyleNet of a TrainResult: eval mode, frozen (a fixed augmenter)."""
    net = StyleNet(result.config.net)
    net.load_state_dict(result.state_dict)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(device).eval()


@torch.no_grad()
def stylize(style_net: StyleNet, content: torch.Tensor, style: torch.Tensor, alpha_range: tuple[float, float],
            prob: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, bool]:
    """UniFrame's per-batch style augmentation: with probability ``prob`` the whole batch
    is restyled towards ``style`` (matched image by image) with alpha ~ U(alpha_range),
    else returned unchanged. Returns (images, whether it was restyled)."""
    if prob <= 0 or torch.rand((), generator=generator).item() >= prob:
        return content, False
    lo, hi = alpha_range
    alpha = lo + (hi - lo) * torch.rand((), generator=generator).item()
    if style.shape[0] != content.shape[0]:
        style = style[torch.arange(content.shape[0]) % style.shape[0]]
    return style_net(content, style.to(content.device), alpha).clamp(0, 1), True
