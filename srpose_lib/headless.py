"""Headless training of any stage into the notebooks' cache: ``python -m srpose_lib.train``.

    python -m srpose_lib.train source_only --task hand --mode full
    python -m srpose_lib.train pseudo_rec --task body --mode full -p train.lr 2e-4 --device cuda:1
    torchrun --nproc_per_node 4 -m srpose_lib.train source_only --task rhd_h3d --mode full
    python -m srpose_lib.train --list

The stage is trained (with the stages it depends on, each loaded from the cache when it is
there) exactly as a notebook would train it: the configuration is
``presets.config_for(stage, mode, task)`` with the ``-p`` overrides, the cache folder and the
data are the notebooks' (``SRPOSE_CACHE_DIR``, ``SRPOSE_DATA_DIR``), so the notebook run
afterwards with the same mode and overrides finds the checkpoint and only loads and evaluates
it ("loaded cached <stage>" in its log). Under ``torchrun`` the trainers that support it use
DistributedDataParallel (train/distributed.py; :data:`DATA_PARALLEL`: the supervised stages,
Baseline and the +pseudo methods); +rec (``rec``, ``pseudo_rec``) is refused there; the
others train on rank 0.

Exit status: 0 trained (or already cached), 2 usage or configuration error, 3 stopped on
purpose (``--stop-after``; the same command resumes).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import sys
from pathlib import Path
from typing import Sequence

from . import config as config_mod
from .errors import ConfigError, SrposeError, did_you_mean

#: What each stage name trains, through which method of ``pipeline.Stages``.
SUPERVISED = ("source_only", "oracle", "pretrain")
#: The stages whose trainer is data-parallel under torchrun (the others train on rank 0 alone).
DATA_PARALLEL = SUPERVISED + ("baseline", "pseudo_m2d", "pseudo_m3d", "pseudo_union", "pseudo_indep", "pseudo")


def stage_names() -> tuple[str, ...]:
    from .presets import STAGES

    return STAGES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m srpose_lib.train",
        description="Train one stage (and what it depends on) into the cache the notebooks read.")
    p.add_argument("stage", nargs="?", help="the stage to train; --list names them")
    p.add_argument("--task", default="hand",
                   help="hand, body (built-in benchmark) or a real-data task (rhd_h3d, surreal_h36m, ...)")
    p.add_argument("--mode", default="full", help="run mode: smoke | quick | full (default full)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a config field by its dotted name (or a unique leaf name), "
                        "e.g. -p train.epochs 3 -p model.arch resnet50; repeatable")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed of the stage and of every stage it starts from (a notebook's SEED)")
    p.add_argument("--cache-dir", help="checkpoint cache (default $SRPOSE_CACHE_DIR, else <repo>/artifacts/cache)")
    p.add_argument("--data-dir", help="prepared real datasets (default $SRPOSE_DATA_DIR, else <repo>/data)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--force", action="store_true", help="retrain the stage asked for (never its dependencies)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: SyncBatchNorm (global-batch statistics) instead of per-process BN")
    p.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                   help="stop after this many finished epochs of the stage (it resumes on the next call)")
    p.add_argument("--list", action="store_true", help="list the stages and exit")
    return p


def parse_value(text: str):
    """A ``-p`` VALUE: a Python literal (3, 1e-4, True, (45, 60), [1, 2], None) or else the
    text itself (resnet50)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_type(key: str, old, new):
    """Refuse a value of the wrong kind for the field (``-p train.epochs abc``)."""
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, int):
        ok = isinstance(new, int) and not isinstance(new, bool)
    elif isinstance(old, float):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        new = float(new) if ok else new
    elif isinstance(old, tuple):
        ok = isinstance(new, (list, tuple))
        new = tuple(new) if ok else new
    elif isinstance(old, str):
        ok = isinstance(new, str)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"-p {key} {new!r}: the field holds a value of type {type(old).__name__} (now {old!r})",
                          f"give one like -p {key} {old!r}")
    return new


def _current(cfg, key: str):
    """The value of field ``key`` (dotted, double-underscore or unique leaf name) in ``cfg``."""
    path = key.replace("__", ".").split(".")
    if len(path) == 1 and path[0] not in {f.name for f in dataclasses.fields(cfg)}:
        path = config_mod._resolve_leaf(cfg, path[0])
    value = cfg
    for name in path:
        if not dataclasses.is_dataclass(value) or name not in {f.name for f in dataclasses.fields(value)}:
            config_mod.override(cfg, **{key: None})  # raises the config's own did-you-mean error
            raise ConfigError(f"unknown config field {key!r}")  # pragma: no cover
        value = getattr(value, name)
    return value


def build_config(stage: str, mode: str, task: str, params: Sequence[tuple[str, str]] = (), seed: int | None = None):
    """``presets.config_for(stage, mode, task, seed=seed)`` with the ``-p`` overrides, each
    checked against the field it replaces (unknown names get the config's did-you-mean);
    ``seed``, as a notebook's ``SEED``, seeds every stage that trains."""
    from . import presets

    if stage not in presets.STAGES:
        raise ConfigError(f"unknown stage {stage!r}", did_you_mean(stage, presets.STAGES))
    presets._check_mode(mode)
    presets.check_task(task)
    base = presets.config_for(stage, mode, task, seed=seed)
    changes = {}
    for key, text in params:
        changes[key] = _check_type(key, _current(base, key), parse_value(text))
    return config_mod.override(base, **changes) if changes else base


def train_stage(stages, stage: str, cfg, force: bool = False):
    """Train (or load) ``stage`` with ``cfg`` through :class:`..pipeline.Stages`."""
    if stage in SUPERVISED:
        return stages.supervised(cfg, force=force)
    if stage == "style_net":
        return stages.style_net(cfg, force=force)
    if stage == "lifting":
        return stages.lifting(cfg, force=force)
    if stage == "generator":
        return stages.generator(cfg, force=force)
    from .presets import COMPARISON_STAGES

    if stage in COMPARISON_STAGES:  # RegDA, CC-SSL
        return stages.comparison(cfg, force=force)
    return stages.adapted(cfg, force=force)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print("stages: " + ", ".join(stage_names()))
        print("data-parallel under torchrun: " + ", ".join(DATA_PARALLEL) + " (rec and pseudo_rec are refused "
              "there; the others train on rank 0)")
        return 0
    if not args.stage:
        parser.print_usage(sys.stderr)
        print("error: name the stage to train (--list names them)", file=sys.stderr)
        return 2
    from .train import distributed

    try:
        return _run(args, distributed)
    except ConfigError as e:  # bad input: the message and its fix, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SrposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()


def _run(args, distributed) -> int:
    from . import presets, utils
    from .data.benchmark import BenchmarkData
    from .pipeline import Stages
    from .train.loop import Stopped, stop_after

    cfg = build_config(args.stage, args.mode, args.task, args.param, args.seed)
    device = distributed.device_for(args.device)
    ctx = distributed.init(device, sync_bn=args.sync_bn)
    if getattr(cfg, "rec", None) is not None:  # refuse +rec before its dependencies train
        from .adapt.train import check_distributed

        check_distributed(cfg)
    log = print if ctx.is_main else (lambda s: None)
    cache_dir = utils.ensure_writable_dir(Path(args.cache_dir) if args.cache_dir else utils.default_cache_dir(),
                                          "cache")
    data_dir = Path(args.data_dir or os.environ.get("SRPOSE_DATA_DIR", "").strip() or utils.repo_root() / "data")
    presets.require_data(args.task, args.mode, data_dir)
    utils.seed_everything(getattr(cfg, "seed", 0))
    where = f"{ctx.world_size} processes ({ctx.backend}{', SyncBatchNorm' if ctx.sync_bn else ''})" \
        if ctx.distributed else "1 process"
    log(f"srpose train {args.stage} | task {args.task} | mode {args.mode} | device {device} | {where} | "
        f"cache {cache_dir}")
    data = BenchmarkData(cache_dir, show_progress=ctx.is_main, data_dir=data_dir)
    stages = Stages(cache_dir, data, device=device, log=log, show_progress=ctx.is_main)
    try:
        if args.stop_after is not None:
            if args.stop_after < 1:
                raise ConfigError("--stop-after must be at least 1 epoch")
            with stop_after(args.stage, args.stop_after):
                result = train_stage(stages, args.stage, cfg, force=args.force)
        else:
            result = train_stage(stages, args.stage, cfg, force=args.force)
    except Stopped as e:
        log(str(e))
        return 3
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in result.metrics.items() if isinstance(v, (int, float, str)))
    log(f"{args.stage} {args.task} ({args.mode}): {'loaded from' if result.from_cache else 'trained into'} "
        f"{result.run_dir}" + (f" | {metrics}" if metrics else ""))
    return 0
