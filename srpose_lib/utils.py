"""Small shared helpers: paths, atomic writes, seeding, devices, provenance, progress bars.

torch is imported lazily inside the functions that need it, so importing this module (and
``srpose_lib.nb`` / ``srpose_lib.runner``, which use it) stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator

from .errors import ConfigError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_PACKAGE_DIR = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------
# paths


def repo_root() -> Path:
    """The folder holding ``pyproject.toml`` above the package (the repository root).

    Works for an editable install. For a plain (non-editable) install there is no
    repository; the current working directory is used instead.
    """
    for folder in _PACKAGE_DIR.parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return Path.cwd()


def default_output_dir() -> Path:
    """``<repo>/artifacts``: where metrics, figures and executed notebooks go by default."""
    return repo_root() / "artifacts"


def default_cache_dir() -> Path:
    """The checkpoint/data cache: env ``SRPOSE_CACHE_DIR`` or ``<repo>/artifacts/cache``."""
    env = os.environ.get("SRPOSE_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return default_output_dir() / "cache"


def ensure_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Create ``path`` (with parents) and check that a file can be written in it.

    ``what`` names the folder's role in the error message, e.g. ``"output"``.
    Raises :class:`ParameterError` naming the folder and the fix.
    """
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".srpose-write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise ParameterError(
            f"cannot write the {what} folder {folder}: {reason}",
            f"choose a writable {what} folder (its parents must be folders, "
            "not files), or fix the permissions of this one",
        ) from None
    return folder.resolve()


# ---------------------------------------------------------------------------------------
# atomic writes


@contextmanager
def _atomic_file(path: str | os.PathLike, mode: str) -> Iterator[IO]:
    """Yield a temp file next to ``path``; on success fsync it and move it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Best effort: persist the rename itself (POSIX only)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old or the new file."""
    with _atomic_file(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented plain JSON (no NaN/Infinity) to ``path`` atomically."""
    text = json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically: an interrupted save never leaves a torn file."""
    import torch

    with _atomic_file(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


# ---------------------------------------------------------------------------------------
# seeds and devices


def seed_everything(seed: int) -> int:
    """Seed ``random``, NumPy and torch (CPU and every CUDA device); returns the seed."""
    import numpy as np

    # Must be set before CUDA initialises for deterministic cuBLAS to be possible at all.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def resolve_device(name: str) -> "torch.device":
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for but CUDA is not available on this machine",
                'use DEVICE = "auto" (CUDA when present, else CPU) or DEVICE = "cpu"',
            )
        index = int(text[5:]) if ":" in text else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"device {name!r} does not exist: this machine has {count} CUDA device(s)",
                f'use DEVICE = "cuda:0" … "cuda:{count - 1}" or "auto"',
            )
        return torch.device(text)
    raise ConfigError(
        f"unknown device {name!r}",
        'use "auto", "cpu", "cuda" or "cuda:N"',
    )


# ---------------------------------------------------------------------------------------
# provenance


def git_sha() -> str | None:
    """Short SHA of the repository's HEAD, with ``+dirty`` when the tree has changes.

    ``None`` outside a git checkout, without git, or on any error; never raises.
    """
    root = repo_root()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        if not sha:
            return None
        dirty = git("status", "--porcelain")
        return f"{sha}+dirty" if dirty else sha
    except Exception:  # noqa: BLE001 - provenance must never break a run
        return None


def versions() -> dict[str, str]:
    """Versions that identify a run: srpose, torch, torchvision, python and the device name."""
    from . import __version__

    info = {"srpose": __version__, "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        )
    except Exception:  # noqa: BLE001
        info["torch"] = "unavailable"
        info["device"] = "cpu"
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except Exception:  # noqa: BLE001
        info["torchvision"] = "unavailable"
    return info


# ---------------------------------------------------------------------------------------
# progress bars


class _LineStream:
    """A file for text-mode tqdm: one complete line per update, no carriage returns.

    Batch logs (papermill ``log_output``, CI) then read as a list of lines.
    """

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line:
            self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        getattr(self._stream, "flush", lambda: None)()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


#: Text-mode progress: the least time between two lines, and nothing for loops shorter than it.
TEXT_PROGRESS_GAP_S = 30.0


@functools.lru_cache(maxsize=None)
def _text_progress_class():
    """A plain-tqdm subclass that prints a handful of lines per loop (built lazily: tqdm import)."""
    from tqdm.std import tqdm as std_tqdm

    class TextProgress(std_tqdm):
        """Progress for batch logs and executed notebooks: a few plain lines per loop.

        A line at most every ``gap`` seconds and none in a loop's first ``gap`` seconds; with a
        known total only when a further quarter is done (so at most three lines, plus a final
        one for a loop that ran ``gap`` seconds or longer and keeps its bar, ``leave=True``);
        without a total at doubling times (``gap``, ``2 gap``, ``4 gap``, ...).
        """

        def __init__(self, *args: Any, gap: float | None = None, **kw: Any):
            self._gap = float(TEXT_PROGRESS_GAP_S if gap is None else gap)
            self._printed_at: float | None = None
            self._next_quarter = 1
            self._closing = False
            kw["delay"] = 0.0  # tqdm's own delay would also skip the final line; display() decides
            kw["mininterval"] = min(float(kw.get("mininterval", 1.0)), 1.0, self._gap)
            super().__init__(*args, **kw)

        def close(self) -> None:
            self._closing = True
            super().close()

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if msg == "":  # tqdm clearing a leave=False bar: nothing to clear in a log
                return True
            if not hasattr(self, "start_t"):  # tqdm's first refresh, from its __init__
                return True
            now = self._time()
            elapsed = now - self.start_t
            if elapsed < self._gap:
                return True
            if not self._closing:
                if self._printed_at is not None and now - self._printed_at < self._gap:
                    return True
                if self.total:
                    quarter = int(4 * self.n / self.total)
                    if quarter < self._next_quarter or self.n >= self.total:
                        return True  # the final line comes from close()
                    self._next_quarter = quarter + 1
                elif self._printed_at is not None and elapsed < 2 * (self._printed_at - self.start_t):
                    return True
                self._printed_at = now
            return super().display(msg, pos)

    return TextProgress


def progress(iterable: Iterable | None = None, **kw: Any):
    """A throttled tqdm progress bar.

    - ``TQDM_DISABLE=1``: disabled.
    - ``SRPOSE_PROGRESS=text`` (the runner and nbval set it): plain lines, a handful per loop
      (see ``TextProgress``: every ``TEXT_PROGRESS_GAP_S`` s at most, nothing for shorter
      loops), so batch logs and executed notebooks carry no floods of bar updates.
    - otherwise ``tqdm.auto``: a widget in JupyterLab, ``mininterval >= 1``.
    """
    # read TQDM_DISABLE now: tqdm itself bakes the value it saw at import time into its defaults
    kw["disable"] = True if _env_true("TQDM_DISABLE") else kw.get("disable", False)
    if os.environ.get("SRPOSE_PROGRESS", "").strip().lower() == "text":
        kw.setdefault("file", _LineStream(kw.pop("file", None) or sys.stderr))
        kw.setdefault("ascii", True)
        kw.setdefault("ncols", 100)
        return _text_progress_class()(iterable, **kw)
    from tqdm.auto import tqdm as bar

    kw["mininterval"] = max(float(kw.get("mininterval", 1)), 1.0)
    return bar(iterable, **kw)
