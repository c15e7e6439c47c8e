"""Run-mode presets: the one place where ``smoke`` / ``quick`` / ``full`` defaults live.

* ``smoke``: seconds per stage on a CPU; checks that everything runs (CI).
* ``quick``: a laptop-CPU walkthrough in minutes: 64 px images, a small ResNet, 32 px
  heatmaps, spatial-softmax (KL) loss.
* ``full``: paper scale for a GPU: ResNet-101, 256 px images, 64 px heatmaps, sigma 2,
  MSE loss, 70 epochs × 500 iterations of batch 32, Adam 1e-3 dropped at 45 and 60 (TLL's
  ERM schedule).

Our choice for ``quick``: the KL loss of RegDA rather than the MSE of SimpleBaseline,
because at a CPU budget of a few minutes MSE-to-Gaussian heatmaps barely learn while the
spatial-softmax loss does (measured; see notebook 01).
"""

from __future__ import annotations

from dataclasses import replace

from .config import override
from .data.datasets import DataConfig, TargetConfig
from .data.transforms import AugmentConfig
from .errors import ConfigError, did_you_mean
from .models import ModelConfig
from .synth.benchmark import benchmark_config
from .synth.domains import check_task as _check_synthetic_task
from .train.supervised import SupervisedConfig, TrainConfig

RUN_MODES = ("smoke", "quick", "full")


def check_task(task: str) -> str:
    """A built-in task (hand, body) or a real-data task (rhd_h3d, ..., surreal_3dpw)."""
    from .data.real import REAL_TASKS

    if task in REAL_TASKS:
        return task
    try:
        return _check_synthetic_task(task)
    except ConfigError:
        raise ConfigError(f"unknown task {task!r}",
                          did_you_mean(task, ("hand", "body") + tuple(REAL_TASKS))) from None


def require_data(task: str, mode: str, data_dir) -> None:
    """Fail early when a real-data task's prepared datasets are not in ``data_dir`` at the
    crop size of ``mode`` (64 px in smoke mode, else 256): a DataError listing the
    ``python -m data_scripts.<name>`` commands. Nothing to check for hand and body."""
    from .data.real import REAL_TASKS, require_task_data

    if check_task(task) in REAL_TASKS:
        require_task_data(task, data_dir, benchmark_for(mode, task).image_size)


STAGES = ("source_only", "oracle", "pretrain", "lifting", "style_net",
          "baseline", "pseudo_m2d", "pseudo_m3d", "pseudo_union", "pseudo_indep", "pseudo",
          "generator", "rec", "pseudo_rec")


def _augment(task: str) -> AugmentConfig:
    # TLL ERM: rotation ±180 for hands, ±30 for bodies; RRC 0.6-1.3; jitter 0.25; blur.
    # The benchmark's hands are already rotated by the renderer (roll ±40°), so we use
    # ±45° rather than ±180° (a choice; augment.rotation).
    rotation = 45.0 if task == "hand" else 30.0
    flip = 0.0 if task == "hand" else 0.5
    return AugmentConfig(rotation=rotation, scale=(0.8, 1.25), translate=0.05, flip=flip,
                         color_jitter=0.25, blur=0.8, blur_prob=0.5)


def benchmark_for(mode: str, task: str, **overrides):
    """The data of a task in a run mode: the built-in benchmark's configuration (sizes,
    resolution, domains), or a real-data task (256 px prepared crops; 64 px in smoke mode,
    for tests on small fixtures)."""
    _check_mode(mode)
    from .data.real import REAL_TASKS, RealTaskConfig

    if task in REAL_TASKS:
        cfg = RealTaskConfig(task=task, image_size=64 if mode == "smoke" else 256)
        return override(cfg, **overrides) if overrides else cfg
    if mode == "full":
        bench = benchmark_config(task, image_size=256, num_train=40000, num_val=1000, num_test=3200)
    elif mode == "quick":
        bench = benchmark_config(task, image_size=64, num_train=12000, num_val=512, num_test=1024)
    else:
        bench = benchmark_config(task, image_size=64, num_train=256, num_val=32, num_test=64)
    return override(bench, **overrides) if overrides else bench


def _check_mode(mode: str) -> None:
    if mode not in RUN_MODES:
        raise ConfigError(f"unknown run mode {mode!r}", did_you_mean(mode, RUN_MODES))


def _supervised(stage: str, mode: str, task: str) -> SupervisedConfig:
    """source_only / oracle; 'pretrain_base' is source_only's schedule for the pretrain stage.
    Real-data tasks get TLL's ERM augmentation (rotation ±180° hands / ±30° bodies, scale
    0.6-1.3)."""
    from .data.real import REAL_TASKS

    bench = benchmark_for(mode, task)
    real = task in REAL_TASKS
    if mode == "full":
        target = TargetConfig(heatmap_size=64, sigma=2.0)
        model = ModelConfig(arch="resnet101", deconv_channels=(256, 256, 256), channels_last=True)
        train = TrainConfig()  # 70 × 500 × 32, Adam 1e-3, [45, 60], MSE
    elif mode == "quick":
        target = TargetConfig(heatmap_size=32, sigma=1.0)
        model = ModelConfig(arch="resnet_tiny", deconv_channels=(64, 64, 64), channels_last=True)
        train = TrainConfig(epochs=12, iters_per_epoch=0, batch_size=32, lr=2e-3,
                            milestones=(9,), loss="kl")
    else:  # smoke
        target = TargetConfig(heatmap_size=32, sigma=1.0)
        model = ModelConfig(arch="resnet_tiny", deconv_channels=(32, 32, 32), tiny_widths=(8, 16, 32, 64))
        train = TrainConfig(epochs=2, iters_per_epoch=8, batch_size=16, lr=2e-3, milestones=(),
                            loss="kl", eval_batch_size=64)
    augment = _augment(task) if not real else AugmentConfig(
        rotation=180.0 if REAL_TASKS[task][2] == "hand21" else 30.0, scale=(0.6, 1.3), translate=0.05,
        flip=0.0 if REAL_TASKS[task][2] == "hand21" else 0.5, color_jitter=0.25, blur=0.8, blur_prob=0.5)
    return SupervisedConfig(stage="source_only" if stage == "pretrain_base" else stage, benchmark=bench,
                            data=DataConfig(target=target, augment=augment),
                            model=model, train=train)


def config_for(stage: str, mode: str, task: str, seed: int | None = None, **overrides):
    """The configuration of ``stage`` in run mode ``mode`` for ``task``, with overrides by
    field name (``epochs=3``, ``train__lr=1e-3`` or ``**{"model.arch": "resnet18"}``).

    ``seed`` (a notebook's ``SEED``) becomes the seed of every stage that trains for it — the
    stage itself and the stages it starts from (pre-training, StyleNet, lifting, W + G) — while
    the data stays the same (:func:`with_seed`). So a new seed trains anew, the cache keeps
    seeds apart, and for one seed every method shares one pre-trained model and one W + G
    (a paired design: seed noise cancels in the differences between methods).

    Stages: ``source_only``, ``oracle``, ``pretrain`` (source + style augmentation, the
    paper's L_pre-train), ``style_net``, ``lifting``, and the adaptation methods
    ``baseline`` (UniFrame's mean teacher), ``pseudo_m2d``, ``pseudo_m3d``,
    ``pseudo_union``, ``pseudo_indep`` and ``pseudo`` (ours); ``generator`` (W + G
    pre-training) and the methods with the reconstruction term, ``rec`` (Baseline + rec) and
    ``pseudo_rec`` (+pseudo + rec)."""
    _check_mode(mode)
    check_task(task)
    from .data.real import REAL_TASKS

    if task in REAL_TASKS and mode == "quick":
        mode = "full"  # real data: the paper-scale configuration (a GPU job)
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", did_you_mean(stage, STAGES))
    if stage in ("source_only", "oracle"):
        cfg = _supervised(stage, mode, task)
    elif stage == "pretrain":
        cfg = replace(_supervised("pretrain_base", mode, task), stage="pretrain",
                      style=config_for("style_net", mode, task))
    elif stage == "style_net":
        cfg = style_config_for(mode, task)
    elif stage == "lifting":
        cfg = _lifting(mode, task)
    elif stage == "generator":
        cfg = _generator(mode, task)
    elif stage in ("rec", "pseudo_rec"):
        cfg = _geometric(stage, mode, task)
    elif stage in COMPARISON_STAGES:
        cfg = COMPARISON_STAGES[stage](mode, task)
    else:
        cfg = _adaptation(stage, mode, task)
    if seed is not None:
        cfg = with_seed(cfg, seed)
    return override(cfg, **overrides) if overrides else cfg


def with_seed(cfg, seed: int):
    """``cfg`` with ``seed`` in every nested training config (every dataclass with a ``seed``
    field), except the data's own (:class:`BenchmarkConfig`, :class:`RealTaskConfig`: the
    rendered or prepared images stay the same for every training seed)."""
    import dataclasses

    from .data.real import RealTaskConfig
    from .synth.benchmark import BenchmarkConfig

    def walk(node):
        if not dataclasses.is_dataclass(node) or isinstance(node, (BenchmarkConfig, RealTaskConfig)):
            return node
        changes = {f.name: walk(getattr(node, f.name)) for f in dataclasses.fields(node)
                   if dataclasses.is_dataclass(getattr(node, f.name))}
        if any(f.name == "seed" for f in dataclasses.fields(node)):
            changes["seed"] = seed
        return replace(node, **changes) if changes else node

    return walk(cfg)


def _lifting(mode: str, task: str):
    from .adapt.lifting import LiftingConfig, LiftingTrainConfig

    net = {"smoke": LiftingConfig(hidden=64, epochs=2), "quick": LiftingConfig(),
           "full": LiftingConfig(hidden=1024, epochs=60)}[mode]
    return LiftingTrainConfig(benchmark=benchmark_for(mode, task), net=net)


def _adaptation(method: str, mode: str, task: str):
    """UniFrame's mean teacher on top of the pre-trained model, with the method's
    pseudo-labels."""
    from .adapt.mean_teacher import MeanTeacherConfig, ViewConfig
    from .adapt.pseudo import METHODS, PseudoConfig
    from .adapt.config import AdaptConfig

    pretrain = config_for("pretrain", mode, task)
    # Our choice: UniFrame pre-trains with exactly its view augmentation (rotation ±180°
    # hands / ±60° bodies, shear ±30°, scale 0.6-1.3); we keep that principle, views =
    # pre-training augmentation, with our pre-training's milder values. With UniFrame's
    # values the quick-mode teacher's labels on its views were 12% correct, against 38%.
    aug = pretrain.data.augment
    views = ViewConfig(base_scale=(1.0, 1.0), rotation=aug.rotation, shear=0.0, translate=aug.translate,
                       scale=aug.scale, color_jitter=aug.color_jitter)
    teacher = MeanTeacherConfig(student=views, teacher=views)
    if mode == "full":  # UniFrame: 30 mean-teacher epochs x 500 iterations, Adam 1e-4
        train = TrainConfig(epochs=30, iters_per_epoch=500, batch_size=32, lr=1e-4, milestones=(5, 20), loss="mse")
    elif mode == "quick":
        train = TrainConfig(epochs=6, iters_per_epoch=0, batch_size=32, lr=2e-4, milestones=(), loss="kl")
    else:
        train = TrainConfig(epochs=2, iters_per_epoch=4, batch_size=8, lr=2e-4, milestones=(), loss="kl",
                            eval_batch_size=64)
    strategy = METHODS[method]
    return AdaptConfig(method=method, pretrain=pretrain, style=pretrain.style, mean_teacher=teacher,
                       pseudo=PseudoConfig(strategy=strategy),
                       lifting=None if strategy == "m2d" else _lifting(mode, task), train=train)


def _generator(mode: str, task: str):
    """Generator pre-training (R1): W + G sized for the mode, on pairs with keypoints from
    the Baseline's adapted teacher."""
    from .adapt.config import GeneratorTrainConfig, PairConfig

    predictor = config_for("baseline", mode, task)
    net = recon_config(mode, predictor.pretrain.benchmark.image_size)
    # the benchmark: any two frames of its 8-frame sequences; real videos: up to 2 kept frames apart
    pairs = PairConfig(max_gap=7 if task in ("hand", "body") else 2)
    if mode == "full":  # FOMM: Adam 2e-4; 30 x 500 iterations of 16 pairs at 256 px
        return GeneratorTrainConfig(predictor=predictor, net=net, pairs=pairs, epochs=30, iters_per_epoch=500,
                                    batch_size=16, lr=2e-4, diag_pairs=512)
    if mode == "quick":
        return GeneratorTrainConfig(predictor=predictor, net=net, pairs=pairs, epochs=4, iters_per_epoch=150,
                                    batch_size=16, lr=1e-3)
    return GeneratorTrainConfig(predictor=predictor, net=net, pairs=pairs, epochs=2, iters_per_epoch=3, batch_size=4,
                                lr=1e-3, diag_pairs=16)


def _geometric(method: str, mode: str, task: str):
    """+rec methods: the pseudo-labelling method's config with the reconstruction term and
    the pre-training of its W + G."""
    from .adapt.config import GEOMETRIC_METHODS, RecTermConfig

    adapt = config_for(GEOMETRIC_METHODS[method], mode, task)
    # λ_rec: chosen so that the keypoint-gradient norm of λ_rec · L_rec is 0.1-1x that of the
    # pseudo-label loss (the ratio the +rec logs report); with the KL loss of quick mode,
    # λ 1 measured 0.09 (hand), so 3. Full mode (MSE pseudo-label loss) keeps 1.
    if mode == "full":
        rec = RecTermConfig(weight=1.0, batch_size=16, ramp_iters=2000)
    elif mode == "quick":  # 4 pairs (8 images, both ways) per iteration: +60% time per iteration
        rec = RecTermConfig(weight=3.0, batch_size=4, ramp_iters=300)
    else:
        rec = RecTermConfig(batch_size=4, ramp_iters=2)
    return replace(adapt, method=method, rec=rec, generator=_generator(mode, task))


def style_config_for(mode: str, task: str):
    """StyleNet f_sty: seconds in smoke mode, ~2 minutes per task in quick mode on a 2-core
    CPU, a wider net at 256 px in full mode."""
    from .models.style_net import StyleNetConfig
    from .train.style import StyleTrainConfig

    bench = benchmark_for(mode, task)
    if mode == "smoke":
        return StyleTrainConfig(bench, StyleNetConfig(widths=(8, 16, 32)), ae_iterations=6, style_iterations=6,
                                batch_size=4, checkpoint_every=4)
    if mode == "full":
        return StyleTrainConfig(bench, StyleNetConfig(widths=(32, 64, 128, 256)), ae_iterations=4000,
                                style_iterations=8000, batch_size=8)
    return StyleTrainConfig(bench)


def recon_config(mode: str, image_size: int):
    """W and G sizes of a run mode: the supplementary's at full size (§A), small on the CPU."""
    from .models.reconstruction import ReconConfig

    if mode == "full":
        return ReconConfig(w_size=image_size // 4, w_blocks=5, w_base=64, w_max=512, g_base=64, g_max=256,
                           g_res_blocks=6, norm="batch")
    if mode == "quick":
        return ReconConfig(w_size=image_size // 4, w_blocks=3, w_base=16, w_max=64, g_base=16, g_max=64,
                           g_res_blocks=2, norm="group")
    return ReconConfig(w_size=image_size // 4, w_blocks=2, w_base=8, w_max=16, g_base=8, g_max=16,
                       g_res_blocks=1, norm="group")


ADAPTATION_METHODS = ("baseline", "pseudo_m2d", "pseudo_m3d", "pseudo_union", "pseudo_indep", "pseudo", "rec",
                      "pseudo_rec")


def method_config(method: str, mode: str, task: str, epochs: int = 0, seed: int | None = None):
    """An adaptation method's config with its mean-teacher ``epochs`` (0 keeps the mode's
    default) and ``seed`` set in every stage it trains (:func:`config_for`), whether or not it
    has the reconstruction term."""
    if method not in ADAPTATION_METHODS:
        raise ConfigError(f"unknown adaptation method {method!r}", did_you_mean(method, ADAPTATION_METHODS))
    changes = {}
    if epochs > 0:
        changes["train.epochs"] = epochs
    return config_for(method, mode, task, seed=seed, **changes)


# ----------------------------------------------------------------------------- Fig A's other systems


def _regda(mode: str, task: str):
    """RegDA (Jiang et al., CVPR 2021; Transfer-Learning-Library's ``regda.py``/``regda.sh``)
    on the series' source-only model. ``full``: TLL's stage 2 — SGD 0.01 features / 0.1
    heads with its per-iteration decay, margin 4, trade-off 1, 30 x 500 iterations of batch
    32 (10 epochs on bodies, as ``regda.sh`` for SURREAL->Human3.6M). ``quick``/``smoke``:
    the same rates, as many iterations as the Baseline's mean teacher of the mode. Its
    source model needs the KL loss: in ``full`` mode (MSE) ours gets ``train.loss='kl'``,
    our choice for TLL's stage 1 (70 epochs, KL; its SGD 0.1 is not reproduced: the ERM
    schedule stays)."""
    from .adapt.regda import RegDAConfig, RegDATrainConfig
    from .data.real import REAL_TASKS

    pretrain = config_for("source_only", mode, task)
    if pretrain.train.loss != "kl":
        pretrain = override(pretrain, **{"train.loss": "kl"})
    body = task == "body" or (task in REAL_TASKS and REAL_TASKS[task][2] != "hand21")
    if mode == "full":
        train = RegDATrainConfig(epochs=10 if body else 30, iters_per_epoch=500, batch_size=32)
    elif mode == "quick":  # as the quick Baseline: 6 passes over the target split
        train = RegDATrainConfig(epochs=6, iters_per_epoch=0, batch_size=32)
    else:
        train = RegDATrainConfig(epochs=2, iters_per_epoch=4, batch_size=8, eval_batch_size=64)
    return RegDAConfig(pretrain=pretrain, train=train)


def _ccssl(mode: str, task: str):
    """CC-SSL (Mu et al., CVPR 2020; the authors' ``CCSSL/CCSSL.py``) on the series'
    source-only model. ``full``: 6 rounds (labels renewed every 5 epochs of 500 iterations
    of batch 32: as many iterations as RegDA's 30 x 500), the authors' RMSprop 2.5e-4,
    target weight 10 with the MSE loss, kept shares 20/40/60/80/80/80 %. ``quick``: 3
    rounds of 2 passes (as many passes as the quick Baseline), kept 20/50/80 % so the last
    round reaches the authors' final share; target weight 1. ``smoke``: 2 rounds of 1 tiny
    epoch. Our choice for the target weight with the KL loss (quick, smoke): 1 rather than
    10, because the MSE loss is an average over every heatmap pixel (about 1e-3 per joint,
    which the authors' 10 compensates) while the KL loss is already of order 1 per joint,
    like the source term."""
    from .adapt.ccssl import CCSSLConfig

    pretrain = config_for("source_only", mode, task)
    if mode == "full" or pretrain.train.loss == "mse":
        return CCSSLConfig(pretrain=pretrain, rounds=6, epochs_per_round=5, iters_per_epoch=500, batch_size=32)
    if mode == "quick":
        return CCSSLConfig(pretrain=pretrain, rounds=3, epochs_per_round=2, iters_per_epoch=0, batch_size=32,
                           target_weight=1.0, keep_step=0.3)
    return CCSSLConfig(pretrain=pretrain, rounds=2, epochs_per_round=1, iters_per_epoch=3, batch_size=8,
                       target_weight=1.0, keep_step=0.3, label_batch_size=64, eval_batch_size=64)


#: Stages of the comparison systems of Fig A (notebook 08), besides source_only and the methods above.
COMPARISON_STAGES = {"regda": _regda, "ccssl": _ccssl}
STAGES = STAGES + tuple(COMPARISON_STAGES)
