"""The configuration of an adaptation run: the mean teacher with its pseudo-labels and,
optionally, the reconstruction term (+rec, supplementary §A) with the W + G it needs.

One dataclass, :class:`AdaptConfig`, describes every adaptation method of the series:
``baseline`` / ``pseudo_*`` (``rec is None``) and ``rec`` / ``pseudo_rec`` (``rec`` and
``generator`` set). The generator pre-training's config (:class:`GeneratorTrainConfig`)
lives here too because its keypoint predictor is itself an adaptation method's teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, did_you_mean
from ..models.reconstruction import ReconConfig
from ..recon.losses import RecLossConfig
from ..train.precision import PRECISIONS
from ..train.style import StyleTrainConfig
from ..train.supervised import StyleAugConfig, SupervisedConfig, TrainConfig
from .lifting import LiftingTrainConfig
from .mean_teacher import MeanTeacherConfig
from .pseudo import METHODS, PseudoConfig

GEOMETRIC_METHODS = {"rec": "baseline", "pseudo_rec": "pseudo"}  # method -> its pseudo-labelling method
ADAPT_METHODS = {**METHODS, **{m: METHODS[p] for m, p in GEOMETRIC_METHODS.items()}}  # method -> strategy


@dataclass(frozen=True)
class PairConfig:
    """Which images make a (base, driving) pair."""

    max_gap: int = 2  # frames of one sequence at most this many positions apart
    synthetic_rotation: float = 10.0  # single images: the base is a random affine warp (degrees)
    synthetic_scale: float = 0.08  # ... zoom by exp(±scale)
    synthetic_translate: float = 0.04  # ... shift by ±translate × the image side


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Generator pre-training (R1): W + G on pairs, keypoints predicted by the frozen pose
    net ``predictor``: an adaptation method's config (its final teacher; default the
    Baseline's) or a supervised config (the pre-trained model)."""

    predictor: AdaptConfig | SupervisedConfig = field(default_factory=SupervisedConfig)
    net: ReconConfig = ReconConfig()
    loss: RecLossConfig = RecLossConfig()
    pairs: PairConfig = PairConfig()
    domains: tuple[str, ...] = ("source", "target")  # where the training pairs come from
    epochs: int = 8
    iters_per_epoch: int = 250
    batch_size: int = 16
    lr: float = 1e-3  # Adam (FOMM: 2e-4 at full size)
    keypoint_radius: int = 3  # local soft-argmax window of the predicted keypoints
    jitters: tuple[float, ...] = (1.0, 2.0, 4.0)  # px, diagnostic (2)
    diag_pairs: int = 256  # target validation pairs for the diagnostics
    max_ratio: float = 0.9  # diagnostic (1): L_rec(predicted) / L_rec(identity) must be below this
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16: autocast of W + G's forward pass (train/precision.py)

    def __post_init__(self):
        bad = [d for d in self.domains if d not in ("source", "target")]
        if bad or not self.domains:
            raise ConfigError(f"generator domains {self.domains} must be a non-empty subset of source, target")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown generator precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")

    @property
    def pretrain(self) -> SupervisedConfig:
        """The supervised config that fixes the data, network and targets."""
        return getattr(self.predictor, "pretrain", self.predictor)

    @property
    def task(self) -> str:
        return self.pretrain.task


@dataclass(frozen=True)
class RecTermConfig:
    """The reconstruction term of the adaptation (R2)."""

    weight: float = 1.0  # λ_rec
    ramp_iters: int = 500  # λ_rec rises linearly from 0 over these iterations
    batch_size: int = 8  # target pairs per iteration, each used in both directions
    finetune_lr_mult: float = 0.1  # W + G learning rate / the pose net's (0: frozen, eval mode)
    keypoint_radius: int = 3
    grad_every: int = 50  # measure the keypoint-gradient ratio of λ·L_rec to L_pl every this many iterations
    equivariance: float = 0.0  # λ_eq of FOMM's equivariance loss on the driving images (0: off; the mean
    #                            teacher's consistency already asks the student for equivariance)
    equivariance_affine: float = 0.05  # its random affine: rotation ±(90 × this)°, zoom exp(±this), shift ±this


@dataclass(frozen=True)
class AdaptConfig:
    """Everything that determines an adapted model (the pre-training config included).

    ``rec`` and ``generator`` are set exactly for the methods with the reconstruction term
    (``rec`` = Baseline + rec, ``pseudo_rec`` = +pseudo + rec): λ_rec · L_rec is added to
    every iteration, with the W + G that ``generator`` pre-trains."""

    method: str = "baseline"
    seed: int = 0
    pretrain: SupervisedConfig = field(default_factory=SupervisedConfig)
    style: StyleTrainConfig | None = None  # the StyleNet, or None for no style augmentation
    style_aug: StyleAugConfig = StyleAugConfig()
    mean_teacher: MeanTeacherConfig = MeanTeacherConfig()
    pseudo: PseudoConfig = PseudoConfig()
    lifting: LiftingTrainConfig | None = None  # needed by every strategy but m2d
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, iters_per_epoch=0, lr=2e-4,
                                                                   milestones=(), loss="kl"))
    rec: RecTermConfig | None = None  # +rec: the reconstruction term
    generator: GeneratorTrainConfig | None = None  # +rec: the pre-training of its W + G

    def __post_init__(self):
        if self.method not in ADAPT_METHODS:
            raise ConfigError(f"unknown adaptation method {self.method!r}", did_you_mean(self.method, ADAPT_METHODS))
        if ADAPT_METHODS[self.method] != self.pseudo.strategy:
            raise ConfigError(f"method {self.method!r} trains with strategy {ADAPT_METHODS[self.method]!r}, "
                              f"not {self.pseudo.strategy!r}", "build the config with presets.config_for")
        if self.pseudo.strategy != "m2d" and not isinstance(self.lifting, LiftingTrainConfig):
            raise ConfigError(f"method {self.method!r} needs a lifting network config",
                              "set lifting=LiftingTrainConfig(...)")
        geometric = self.method in GEOMETRIC_METHODS
        if geometric != (self.rec is not None) or geometric != (self.generator is not None):
            raise ConfigError(f"method {self.method!r} {'needs' if geometric else 'takes no'} reconstruction term: "
                              f"rec and generator must be {'set' if geometric else 'None'} "
                              f"(the methods with it: {', '.join(GEOMETRIC_METHODS)})",
                              "build the config with presets.config_for")

    @property
    def task(self) -> str:
        return self.pretrain.task
