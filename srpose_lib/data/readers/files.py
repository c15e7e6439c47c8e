"""Loading the releases' annotation files — pickle, JSON, MATLAB ``.mat`` — with errors that
name the file and the fix, and the shape checks every reader makes on what it loaded.

Each loader raises :class:`~srpose_lib.errors.DataError` with ``"<what> <path> is missing"``
or ``"<what> <path> could not be read (<error>); it is probably truncated"``; ``what`` names
the file's role (``"RHD annotation file"``, ``"SURREAL clip annotation"``, ...) and ``fix``
says what to do (usually: restore the file from the official archive).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from ...errors import DataError

__all__ = ["load_pickle", "load_json", "load_mat", "as_array", "image_size_of"]

_PICKLE_ERRORS = (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError,
                  IndexError, KeyError, TypeError)


def _unreadable(what: str, path: Path, e: BaseException, fix: str) -> DataError:
    return DataError(f"{what} {path} could not be read ({type(e).__name__}: {str(e).strip()[:200]}); "
                     "it is probably truncated", fix)


def _require_file(path: Path, what: str, fix: str) -> None:
    if not path.is_file():
        raise DataError(f"{what} {path} is missing", fix)


def load_pickle(path: str | Path, what: str, fix: str):
    """A pickle, Python 3 or Python 2: releases written by Python 2 (RHD, 3DPW, MVHand's
    calibration) hold byte strings that Python 3 only reads with ``encoding='latin1'``,
    which is tried when the plain load fails to decode them."""
    path = Path(path)
    _require_file(path, what, fix)
    try:
        with open(path, "rb") as f:
            try:
                return pickle.load(f)
            except UnicodeDecodeError:  # a Python-2 pickle
                f.seek(0)
                return pickle.load(f, encoding="latin1")
    except _PICKLE_ERRORS as e:
        raise _unreadable(what, path, e, fix) from None


def load_json(path: str | Path, what: str, fix: str):
    """A JSON file."""
    path = Path(path)
    _require_file(path, what, fix)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise _unreadable(what, path, e, fix) from None


def load_mat(path: str | Path, what: str, fix: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The variables ``keys`` of a MATLAB (v5) ``.mat`` file (``scipy.io.loadmat``), each
    required. MATLAB drops trailing singleton dimensions (a 2 x 24 x 1 array is saved as
    2 x 24), so callers check shapes with that in mind."""
    import scipy.io

    path = Path(path)
    _require_file(path, what, fix)
    try:
        mat = scipy.io.loadmat(str(path), variable_names=list(keys))
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError, TypeError, MatReadError, ...
        raise _unreadable(what, path, e, fix) from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DataError(f"{what} {path} lacks the variable(s) {', '.join(missing)}", fix)
    return {k: mat[k] for k in keys}


def as_array(value, shape: tuple, where: str, fix: str, dtype=np.float64) -> np.ndarray:
    """``value`` as an array of ``shape`` (``None`` in ``shape`` matches any size), or a
    DataError saying ``where`` it came from, the shape it has and the one expected."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where} is not a numeric array ({e})", fix) from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise DataError(f"{where} has shape {arr.shape}, expected {want}", fix)
    return arr


def image_size_of(path: str | Path, fix: str) -> tuple[int, int]:
    """(W, H) of an image from its file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(f"image {path} is missing", fix) from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"image {path} could not be read ({e})", fix) from None
