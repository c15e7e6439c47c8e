"""Train once, reuse everywhere: a checkpoint cache keyed by the configuration.

``get_or_train(stage, cfg, train_fn, cache_dir)`` looks for ``<cache_dir>/runs/<key>/final.pt``
where ``key = <stage>-<task>-<hash>`` and the hash covers every semantic field of the
config plus :data:`FORMAT_VERSION`. A changed config gives another key, so it trains anew
instead of loading a stale checkpoint; a checkpoint whose stored config or format does not
match its key fails loudly. Unfinished runs leave ``progress.pt`` in the same folder, and
the training function resumes from it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import stable_hash, to_dict
from ..errors import CacheError
from ..utils import atomic_torch_save, git_sha, versions

# Bump when the checkpoint layout or a training function's meaning changes.
FORMAT_VERSION = 2  # 2: progress.pt holds {"state": {name: state}} of train/loop.py


@dataclass
class TrainResult:
    """A trained model and what its run recorded."""

    stage: str
    config: object
    state_dict: dict
    history: list = field(default_factory=list)  # one dict per epoch
    metrics: dict = field(default_factory=dict)  # final numbers (validation)
    run_dir: Path | None = None
    from_cache: bool = False
    provenance: dict = field(default_factory=dict)


def run_key(stage: str, cfg, data_id: str | None = None) -> str:
    """``<stage>-<task>-<hash>``; ``data_id`` (a fingerprint of prepared real datasets) joins
    the hash when given, so re-prepared or other data never loads a checkpoint of the old."""
    cfg_dict = to_dict(cfg)
    task = getattr(cfg, "task", None) or getattr(getattr(cfg, "benchmark", None), "task", "")
    keyed = {"stage": stage, "format": FORMAT_VERSION, "config": cfg_dict}
    if data_id is not None:
        keyed["data"] = data_id
    digest = stable_hash(keyed)
    return f"{stage}-{task}-{digest}" if task else f"{stage}-{digest}"


def run_dir(stage: str, cfg, cache_dir: str | Path, data_id: str | None = None) -> Path:
    return Path(cache_dir) / "runs" / run_key(stage, cfg, data_id)


def load_checkpoint(path: Path, stage: str, cfg) -> dict:
    """Load ``final.pt``/``progress.pt`` and verify that it belongs to ``stage`` and ``cfg``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CacheError(f"checkpoint {path} could not be read ({e})",
                         f"delete {path.parent} (or pass FORCE_RETRAIN=True) to train again") from e
    problems = []
    if ckpt.get("format_version") != FORMAT_VERSION:
        problems.append(f"format version {ckpt.get('format_version')} != {FORMAT_VERSION}")
    if ckpt.get("stage") != stage:
        problems.append(f"stage {ckpt.get('stage')!r} != {stage!r}")
    if ckpt.get("config") != to_dict(cfg):
        problems.append("its stored configuration differs from the requested one")
    if problems:
        raise CacheError(f"checkpoint {path} does not match what was asked for: " + "; ".join(problems),
                         f"delete {path.parent} (or pass FORCE_RETRAIN=True) to train again")
    return ckpt


def get_or_train(stage: str, cfg, train_fn: Callable[..., TrainResult], cache_dir: str | Path,
                 force: bool = False, log: Callable[[str], None] = print, data_id: str | None = None,
                 **train_kwargs) -> TrainResult:
    """Return the cached result of ``train_fn(cfg, run_dir=..., **train_kwargs)`` or train.

    ``force=True`` deletes the cached run (final and progress) first; ``data_id`` keys the
    run to the data it trains on as well (real datasets, see :meth:`BenchmarkData.fingerprint`)."""
    from . import distributed

    ctx = distributed.context()
    folder = run_dir(stage, cfg, cache_dir, data_id)
    final = folder / "final.pt"
    if force and folder.exists() and ctx.is_main:
        shutil.rmtree(folder)
    if force:
        distributed.barrier()
    if final.exists():
        return _load_final(stage, cfg, folder, log)
    if ctx.distributed and not distributed.is_aware(train_fn):
        # under torchrun, a trainer that does not shard its batches trains on rank 0 alone
        if not ctx.is_main:
            _wait_for(final)
            return _load_final(stage, cfg, folder, lambda s: None)
        log(f"[{stage}] its trainer is not distributed: rank 0 trains it while the other "
            f"{ctx.world_size - 1} process(es) wait")
    folder.mkdir(parents=True, exist_ok=True)
    result = train_fn(cfg, run_dir=folder, **train_kwargs)
    result.run_dir = folder
    result.provenance = {"git_sha": git_sha(), **versions()}
    if ctx.is_main:  # under torchrun rank 0 alone writes (every rank holds the same result)
        result.provenance["world_size"] = ctx.world_size
        atomic_torch_save({
            "format_version": FORMAT_VERSION, "stage": stage, "config": to_dict(cfg),
            "state_dict": result.state_dict, "history": result.history, "metrics": result.metrics,
            "provenance": result.provenance,
        }, final)
        progress = folder / "progress.pt"
        if progress.exists():
            progress.unlink()
    if distributed.is_aware(train_fn):
        distributed.barrier()
    return result


def _load_final(stage: str, cfg, folder: Path, log: Callable[[str], None]) -> TrainResult:
    ckpt = load_checkpoint(folder / "final.pt", stage, cfg)
    log(f"loaded cached {stage} ({folder.name}): {_summary(ckpt.get('metrics', {}))}")
    return TrainResult(stage, cfg, ckpt["state_dict"], ckpt.get("history", []),
                       ckpt.get("metrics", {}), folder, True, ckpt.get("provenance", {}))


def _wait_for(path: Path, poll_s: float = 2.0) -> None:
    """Wait until rank 0 has written ``path`` (torchrun stops every process if rank 0 fails)."""
    import time

    while not path.exists():
        time.sleep(poll_s)


def _summary(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
