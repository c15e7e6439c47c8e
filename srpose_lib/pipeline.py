"""Train once, reuse everywhere: the stages of the series and what each depends on.

    style_net ──► pretrain (source + s2t) ──► baseline / pseudo_* (mean teacher)
                        │          lifting ──┘        │
                        └──► generator (W + G) ──► rec / pseudo_rec (+ reconstruction)
    source_only, oracle (independent)

:class:`Stages` resolves a stage's dependencies through the checkpoint cache, so a notebook
asks for what it needs ("the adapted hand model of method pseudo") and gets it loaded when
an earlier notebook (or run) trained it, or trained now otherwise. ``force`` retrains the
stage asked for, never its dependencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .data.benchmark import BenchmarkData
from .train.cache import TrainResult, get_or_train, run_dir


class Stages:
    """The series' trained stages for one cache folder, data source and device."""

    def __init__(self, cache_dir: str | Path, data: BenchmarkData, device: torch.device | str = "cpu",
                 log: Callable[[str], None] = print, show_progress: bool = True, require_diagnostics: bool = True):
        self.cache_dir = Path(cache_dir)
        self.require_diagnostics = require_diagnostics  # +rec on a W + G failing its diagnostics: refuse or warn
        self.data = data
        self.device = torch.device(device)
        self.log = log
        self.show_progress = show_progress

    def _kw(self):
        return dict(data=self.data, device=self.device, log=self.log, show_progress=self.show_progress)

    def is_trained(self, stage: str, cfg) -> bool:
        """Whether the cache holds the finished run of ``stage`` with ``cfg``."""
        return (run_dir(stage, cfg, self.cache_dir, self.data.fingerprint(cfg)) / "final.pt").exists()

    def diagnostics_pass(self, cfg) -> bool | None:
        """For a +rec config, whether its pre-trained W + G passes its diagnostics (None otherwise)."""
        if getattr(cfg, "rec", None) is None:
            return None
        return bool(self.generator(cfg.generator).metrics.get("passes", False))

    def refuses(self, cfg, force: bool = False) -> bool:
        """Whether :meth:`adapted` would refuse ``cfg``: a +rec run not yet trained (or forced)
        whose W + G fails its diagnostics, with ``require_diagnostics`` on."""
        if not self.require_diagnostics or self.diagnostics_pass(cfg) is not False:
            return False
        return force or not self.is_trained(cfg.method, cfg)

    def _get(self, stage: str, cfg, train_fn, force: bool, **extra) -> TrainResult:
        return get_or_train(stage, cfg, train_fn, self.cache_dir, force=force, data_id=self.data.fingerprint(cfg),
                            **extra, **self._kw())

    def supervised(self, cfg, force: bool = False) -> TrainResult:
        """source_only, oracle, or pretrain (which first gets its StyleNet)."""
        from .train.supervised import train_supervised

        extra = {}
        if cfg.stage == "pretrain":
            extra["style_net"] = self.style_net_model(cfg.style)
        return self._get(cfg.stage, cfg, train_supervised, force, **extra)

    def style_net(self, cfg, force: bool = False) -> TrainResult:
        from .train.style import train_style_net

        return self._get("style_net", cfg, train_style_net, force)

    def style_net_model(self, cfg):
        from .train.style import load_style_net

        return load_style_net(self.style_net(cfg), self.device)

    def lifting(self, cfg, force: bool = False) -> TrainResult:
        from .adapt.lifting import train_lifting

        return self._get("lifting", cfg, train_lifting, force)

    def lifting_model(self, cfg):
        from .adapt.lifting import load_lifting

        return load_lifting(self.lifting(cfg), self.device)

    def generator(self, cfg, force: bool = False) -> TrainResult:
        """W + G pre-trained with the keypoints of a frozen predictor (R1): the teacher of an
        adaptation method, or a supervised model."""
        from .adapt.geometric import train_generator

        return self._get("generator", cfg, train_generator, force, predictor=self.pose_model(cfg.predictor))

    def pose_model(self, cfg) -> torch.nn.Module:
        """The pose net a config stands for, in eval mode: a supervised model or an
        adaptation method's final teacher (trained now if it is not cached)."""
        from .adapt.train import load_teacher
        from .train.supervised import SupervisedConfig, load_model

        if isinstance(cfg, SupervisedConfig):
            return load_model(self.supervised(cfg), self.device)
        return load_teacher(self.adapted(cfg), self.device)

    def generator_model(self, cfg):
        from .adapt.geometric import load_reconstructor

        return load_reconstructor(self.generator(cfg), self.device)

    def adapted(self, cfg, force: bool = False) -> TrainResult:
        """An adaptation method (baseline, pseudo_*, or rec / pseudo_rec with their
        pre-trained W + G), after its pre-training, StyleNet and lifting network."""
        from .adapt.geometric import check_diagnostics, load_reconstructor
        from .adapt.train import train_adaptation

        extra = {}
        if cfg.rec is not None:
            gen = self.generator(cfg.generator)
            if force or not self.is_trained(cfg.method, cfg):  # a finished run loads whatever its W + G
                check_diagnostics(gen, cfg, strict=self.require_diagnostics, log=self.log)
            extra["recon"] = load_reconstructor(gen, self.device)
        pretrained = self.supervised(cfg.pretrain)
        style = self.style_net_model(cfg.style) if cfg.style is not None else None
        lifting = self.lifting_model(cfg.lifting) if cfg.lifting is not None else None
        return self._get(cfg.method, cfg, train_adaptation, force, pretrained=pretrained, style_net=style,
                         lifting=lifting, **extra)

    # ------------------------------------------------------------------ Fig A's other systems

    def comparison(self, cfg, force: bool = False) -> TrainResult:
        """RegDA or CC-SSL (``cfg.method``), on its source-only model."""
        from .adapt.ccssl import train_ccssl
        from .adapt.regda import train_regda

        train_fn = {"regda": train_regda, "ccssl": train_ccssl}[cfg.method]
        return self._get(cfg.method, cfg, train_fn, force, pretrained=self.supervised(cfg.pretrain))

    def comparison_model(self, cfg) -> torch.nn.Module:
        """The adapted pose net of RegDA (its main head) or CC-SSL, in eval mode."""
        from .adapt.ccssl import load_ccssl
        from .adapt.regda import load_regda

        return {"regda": load_regda, "ccssl": load_ccssl}[cfg.method](self.comparison(cfg), self.device)
