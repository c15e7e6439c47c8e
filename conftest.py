"""Repository-level pytest hooks.

When nbval runs notebooks (``pytest --nbval-lax notebooks/``), they should run like in CI:
smoke mode, no widgets, text progress, throw-away output and cache folders, and the
``python3`` kernel resolving to this interpreter. Variables already set are kept.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

_CREATED: list[str] = []


def pytest_configure(config) -> None:
    if not (getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False)):
        return
    os.environ.setdefault("SRPOSE_RUN_MODE", "smoke")
    os.environ.setdefault("SRPOSE_INTERACTIVE", "0")
    os.environ.setdefault("SRPOSE_PROGRESS", "text")
    for key in ("SRPOSE_OUTPUT_DIR", "SRPOSE_CACHE_DIR"):
        if not os.environ.get(key):
            folder = tempfile.mkdtemp(prefix=f"srpose-nbval-{key[7:].lower()}-")
            _CREATED.append(folder)
            os.environ[key] = folder
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join(p for p in (bin_dir, path) if p)


def pytest_unconfigure(config) -> None:
    for folder in _CREATED:
        shutil.rmtree(folder, ignore_errors=True)
    _CREATED.clear()
