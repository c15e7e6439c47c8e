"""Real-data tasks: the paper's transfers between prepared real datasets.

A real task names a source and a target dataset prepared by ``data_scripts`` (see
:mod:`srpose_lib.data.prepared`): ``rhd_h3d``, ``rhd_mvhand`` (hands) and ``surreal_h36m``,
``surreal_lsp``, ``surreal_3dpw`` (bodies). Everything downstream — training, adaptation,
evaluation — treats it like the built-in benchmark: :class:`~srpose_lib.data.benchmark.BenchmarkData`
serves its splits from ``DATA_DIR/prepared/``.

Splits: ``test`` is the dataset's prepared test split; ``train`` and ``val`` divide its
prepared train split, whole sequences to one side where the dataset has sequences (so no
video frame of a validation sequence is trained on), a seeded ``val_fraction`` of it to
``val`` (model selection never looks at a test split). LSP's train and test are the same
2,000 images, as in the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import ConfigError, DataError, did_you_mean

# task -> (source dataset, target dataset, skeleton)
REAL_TASKS = {
    "rhd_h3d": ("rhd", "h3d", "hand21"),
    "rhd_mvhand": ("rhd", "mvhand", "hand21"),
    "surreal_h36m": ("surreal", "human36m", "body16"),
    "surreal_lsp": ("surreal", "lsp", "body16"),
    "surreal_3dpw": ("surreal", "pw3d", "body16"),
}


@dataclass(frozen=True)
class RealTaskConfig:
    """A real-data task. ``image_size`` must equal the prepared crop size (256 by default;
    ``--crop-size`` of the data scripts)."""

    task: str = "rhd_h3d"
    image_size: int = 256
    val_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if self.task not in REAL_TASKS:
            raise ConfigError(f"unknown real-data task {self.task!r}", did_you_mean(self.task, REAL_TASKS))

    @property
    def source(self) -> str:
        return REAL_TASKS[self.task][0]

    @property
    def target(self) -> str:
        return REAL_TASKS[self.task][1]

    def dataset(self, domain: str) -> str:
        if domain not in ("source", "target"):
            raise ConfigError(f"unknown domain {domain!r}", "use 'source' or 'target'")
        return self.source if domain == "source" else self.target


def load_real_split(cfg: RealTaskConfig, data_dir, domain: str, split: str):
    """One split of a real task (see the module docstring for train/val/test)."""
    from .prepared import load_prepared

    name = cfg.dataset(domain)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}", "use train, val or test")
    sp = load_prepared(data_dir, name, "test" if split == "test" else "train")
    if sp.image_size != cfg.image_size:
        raise DataError(f"prepared {name} has {sp.image_size} px crops, the task expects {cfg.image_size} px",
                        f"prepare it again with `--crop-size {cfg.image_size}`, or set benchmark.image_size "
                        f"= {sp.image_size}")
    if split == "test":
        return sp
    val = validation_rows(sp.sequence.numpy(), cfg.val_fraction, cfg.seed)
    rows = val if split == "val" else np.setdiff1d(np.arange(len(sp)), val)
    return subset(sp, rows, split)


def validation_rows(sequence: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows of a seeded ``fraction`` of the samples, taken as whole sequences where the
    samples have sequence ids (>= 0), else as single samples."""
    n = len(sequence)
    want = max(1, int(round(fraction * n))) if n > 1 else 0
    rng = np.random.default_rng(seed)
    if (sequence >= 0).all():
        seqs = rng.permutation(np.unique(sequence))
        rows, count = [], 0
        for s in seqs:
            if count >= want:
                break
            r = np.flatnonzero(sequence == s)
            rows.append(r)
            count += len(r)
        if count < n:  # never the whole split
            return np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
    return np.sort(rng.permutation(n)[:want])


def subset(sp, rows: np.ndarray, split: str):
    """A :class:`~srpose_lib.data.prepared.PreparedSplit` restricted to ``rows``."""
    from .prepared import LazyImages

    idx = torch.as_tensor(rows, dtype=torch.long)
    images = LazyImages([sp.images.paths[i] for i in rows], sp.images.size, sp.images.fix)
    tensors = {k: getattr(sp, k)[idx] for k in ("keypoints", "visible", "keypoints3d", "intrinsics", "boxes",
                                                 "sequence", "frame", "view", "subject")}
    flipped = sp.flipped[idx] if sp.flipped is not None else None
    return replace(sp, split=split, images=images, names=[sp.names[i] for i in rows],
                   source_images=[sp.source_images[i] for i in rows], flipped=flipped, **tensors)



def task_datasets(task: str) -> tuple[str, ...]:
    """The prepared datasets a task reads: (source, target) for a real-data task, none for
    the built-in benchmark's tasks (hand, body)."""
    return tuple(REAL_TASKS[task][:2]) if task in REAL_TASKS else ()


def task_data_problems(task: str, data_dir, image_size: int | None = None) -> dict[str, tuple[str, str]]:
    """``{dataset: (problem, command)}`` for every dataset of ``task`` that cannot be read
    from ``data_dir`` — not prepared, an interrupted prepare, an unreadable ``meta.json``,
    or (with ``image_size``) crops of another size — with the command that prepares it
    (``--crop-size`` added when ``image_size`` is not the scripts' default, 256). Empty
    when all are ready, and for the built-in tasks. Reads only each ``meta.json``; never
    raises."""
    from .prepared import _read_meta, prepare_command

    crop = f" --crop-size {image_size}" if image_size not in (None, 256) else ""
    problems = {}
    for name in task_datasets(task):
        try:
            _, meta = _read_meta(data_dir, name)
        except DataError as e:
            problems[name] = (e.message, prepare_command(data_dir, name) + crop)
            continue
        if image_size is not None and meta["crop_size"] != image_size:
            problems[name] = (f"prepared {name} has {meta['crop_size']} px crops, the task expects {image_size} px",
                              prepare_command(data_dir, name, force=True) + crop)
    return problems


def require_task_data(task: str, data_dir, image_size: int | None = None) -> None:
    """Fail early, before any training, when a real-data task's prepared datasets are not
    all in ``data_dir``: a :class:`DataError` that says what is wrong with each and lists
    the ``python -m data_scripts.<name>`` commands that fix it. Nothing to check for the
    built-in tasks."""
    problems = task_data_problems(task, data_dir, image_size)
    if not problems:
        return
    source, target = task_datasets(task)
    raise DataError(
        f"task {task} (source {source}, target {target}) needs prepared data in {data_dir}: "
        + "; ".join(problem for problem, _ in problems.values()),
        "run " + " and ".join(f"`{cmd}`" for _, cmd in problems.values())
        + " (data_scripts/README.md says where each dataset's raw files go; "
        f"`python -m data_scripts.check --data-dir {data_dir}` reports what is present), "
        "or set DATA_DIR to the folder that holds them")
