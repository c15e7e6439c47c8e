"""Access to the splits of a task — the built-in benchmark's rendered splits or a real-data
task's prepared splits — as keypoint datasets."""

from __future__ import annotations

from pathlib import Path

from ..synth.benchmark import BenchmarkConfig, SynthSplit, load_split, split_key
from .datasets import DataConfig, KeypointDataset


class BenchmarkData:
    """Rendered benchmark splits, cached on disk (``cache_dir/data``) and memoised in
    memory, shared by every stage of a notebook.

    ``compile``: ``True``/``False`` or ``"auto"`` (fuse the renderer with ``torch.compile``
    for splits of more than ``compile_above`` images, where it pays for its compile time)."""

    def __init__(self, cache_dir: str | Path | None, compile: bool | str = "auto",
                 show_progress: bool = True, compile_above: int = 4000, data_dir: str | Path | None = None):
        self.cache_dir = cache_dir
        self.data_dir = data_dir  # prepared real datasets (real-data tasks only)
        self.compile = compile
        self.compile_above = compile_above
        self.show_progress = show_progress
        self._splits: dict[str, SynthSplit] = {}

    def split(self, bench, domain: str, split: str):
        from .real import RealTaskConfig, load_real_split

        if isinstance(bench, RealTaskConfig):
            key = f"real-{bench.task}-{domain}-{split}-{bench.val_fraction}-{bench.seed}"
            if key not in self._splits:
                self._splits[key] = load_real_split(bench, self._data_dir(), domain, split)
            return self._splits[key]
        key = split_key(bench, domain, split)
        if key not in self._splits:
            compile = self.compile
            if compile == "auto":
                compile = bench.split_size(split) > self.compile_above
            self._splits[key] = load_split(bench, domain, split, self.cache_dir,
                                           compile=bool(compile), progress=self.show_progress)
        return self._splits[key]

    def fingerprint(self, cfg) -> str | None:
        """A fingerprint of the prepared real datasets a (nested) stage config trains on —
        their ``meta.json`` contents — or ``None`` for the built-in benchmark, whose data is
        fixed by the config itself. Checkpoints are keyed by it (re-preparing a dataset or
        pointing ``DATA_DIR`` elsewhere never loads a checkpoint trained on other data)."""
        import dataclasses

        from ..config import stable_hash
        from .prepared import _read_meta
        from .real import RealTaskConfig

        def find(node):
            if isinstance(node, RealTaskConfig):
                return node
            if dataclasses.is_dataclass(node):
                for f in dataclasses.fields(node):
                    hit = find(getattr(node, f.name))
                    if hit is not None:
                        return hit
            return None

        real = find(cfg)
        if real is None:
            return None
        return stable_hash([_read_meta(self._data_dir(), name)[1] for name in (real.source, real.target)])

    def _data_dir(self) -> Path:
        import os

        from ..utils import repo_root

        if self.data_dir:
            return Path(self.data_dir)
        return Path(os.environ.get("SRPOSE_DATA_DIR") or repo_root() / "data")

    def dataset(self, bench: BenchmarkConfig, data: DataConfig, domain: str, split: str,
                augment: bool = False) -> KeypointDataset:
        """A :class:`KeypointDataset` over a split; ``augment`` applies ``data.augment``."""
        sp = self.split(bench, domain, split)
        return KeypointDataset(sp, sp.skeleton, data.target, data.augment if augment else None)
