"""The prepared format: every real dataset, cropped once into one layout.

::

    <DATA_DIR>/prepared/<dataset>/
        meta.json          {"format": 1, "dataset", "skeleton": "hand21" | "body16",
                            "crop_size", "crop_scale", "splits": {split: count}, "created",
                            "source": {...provenance}, "complete": true}
        annotations.npz    arrays over all samples of all splits (below)
        images/<split>/<7-digit index>.jpg    square crops, crop_size px

``annotations.npz`` (N = all samples, in the order they were added; the index of a sample
within its split is its rank among the rows of that split):

==============  ===========  ==========================================================
name            (N,) str     the sample's name, a path relative to the dataset folder
split           (N,) str     split name
keypoints2d     (N, K, 2)    float32, crop pixels
visible         (N, K)       bool
keypoints3d     (N, K, 3)    float32, camera coordinates in metres (NaN when unknown)
intrinsics      (N, 3, 3)    float32, of the crop (NaN when unknown)
box             (N, 3)       float32, crop box (x0, y0, side) in the original image
flipped         (N,)         bool, the crop was mirrored after cropping (so the
                             ``box`` -> crop mapping is x -> size - 1 - x of the usual one)
subject, sequence, frame, view   (N,) int64, -1 when not applicable
source_image    (N,) str     the original image file, relative to the dataset folder
==============  ===========  ==========================================================

A prepare script writes through :class:`PreparedWriter` (crops written atomically as they
come, annotations and then ``meta.json`` with ``complete: true`` last, in :meth:`finish`),
so a folder without a complete ``meta.json`` is an interrupted prepare, and the next run
resumes it: crops already on disk are not written again. :func:`load_prepared` reads a split
into a :class:`PreparedSplit`, which has the attributes of the built-in benchmark's
:class:`~srpose_lib.synth.benchmark.SynthSplit` and works with
:class:`~srpose_lib.data.datasets.KeypointDataset`; its images are decoded lazily.
"""

from __future__ import annotations

import errno
import json
import math
import numbers
import os
import shutil
import sys
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
import torch

from ..errors import DataError, did_you_mean
from ..skeletons import SKELETONS, Skeleton
from ..utils import _atomic_file, atomic_write_json
from .crops import crop_image, crop_intrinsics, crop_keypoints, flip_crop, scale_box

FORMAT_VERSION = 1
META = "meta.json"
ANNOTATIONS = "annotations.npz"
STATE = ".prepare-state.json"  # present while a prepare is under way or was interrupted
JOURNAL = ".prepare-journal.jsonl"  # one line per crop written: what it shows (for resuming)
NEW_SUFFIX = ".new"  # prepared/.<dataset>.new: a new build beside a finished folder (--force)
OLD_SUFFIX = ".old"  # prepared/.<dataset>.old: the finished folder for an instant while it is swapped

ARRAYS = ("name", "split", "keypoints2d", "visible", "keypoints3d", "intrinsics", "box",
          "flipped", "subject", "sequence", "frame", "view", "source_image")
INT_FIELDS = ("subject", "sequence", "frame", "view")

__all__ = ["PreparedWriter", "PreparedSplit", "LazyImages", "load_prepared", "check_prepared",
           "prepared_dir", "staging_dir", "os_error", "prepare_command", "FORMAT_VERSION"]


def prepared_dir(data_dir: str | os.PathLike, dataset: str) -> Path:
    """``<data_dir>/prepared/<dataset>``."""
    return Path(data_dir).expanduser() / "prepared" / dataset


def staging_dir(data_dir: str | os.PathLike, dataset: str) -> Path:
    """``<data_dir>/prepared/.<dataset>.new``: where a new build of a finished folder is
    made (``--force``), swapped in by :meth:`PreparedWriter.finish` only when complete."""
    return Path(data_dir).expanduser() / "prepared" / f".{dataset}{NEW_SUFFIX}"


def _old_dir(data_dir, dataset: str) -> Path:
    return Path(data_dir).expanduser() / "prepared" / f".{dataset}{OLD_SUFFIX}"


def _is_complete(folder: Path) -> bool:
    try:
        return json.loads((folder / META).read_text()).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def _finish_swap(data_dir, dataset: str) -> None:
    """Complete a swap cut between its two renames (a crash or power loss): the finished
    new build, else the old folder, goes back under the dataset's name."""
    final, new, old = prepared_dir(data_dir, dataset), staging_dir(data_dir, dataset), _old_dir(data_dir, dataset)
    if final.exists():
        if old.exists() and _is_complete(final):
            shutil.rmtree(old, ignore_errors=True)
        return
    if new.is_dir() and _is_complete(new):
        os.replace(new, final)
    elif old.is_dir():
        os.replace(old, final)
    if old.exists() and final.exists():
        shutil.rmtree(old, ignore_errors=True)


def prepare_command(data_dir: str | os.PathLike, dataset: str, force: bool = False) -> str:
    """The command that prepares ``dataset`` into ``data_dir`` (from the dataset registry,
    else ``python -m data_scripts.<dataset>``)."""
    script = dataset
    try:
        from .readers import DATASETS

        info = DATASETS.get(dataset)
        if info is not None:
            script = info.get("script", dataset) if isinstance(info, dict) else getattr(info, "script", dataset)
    except Exception:  # noqa: BLE001 - a message helper must never fail
        pass
    cmd = f"python -m data_scripts.{script} --data-dir {data_dir}"
    return cmd + " --force" if force else cmd


def _image_name(index: int) -> str:
    return f"{index:07d}.jpg"


@contextmanager
def _quiet_torchvision_io():
    """torchvision >= 0.29 warns on every JPEG encode/decode that TorchCodec supersedes
    them; the functions work, and one warning per image would flood a notebook."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image decoding and encoding capabilities",
                                category=DeprecationWarning)
        yield


def encode_jpeg(image: torch.Tensor, quality: int = 95) -> bytes:
    """uint8 (3, H, W) -> JPEG bytes (torchvision)."""
    from torchvision.io import encode_jpeg as _encode

    with _quiet_torchvision_io():
        return _encode(image.contiguous(), quality=quality).numpy().tobytes()


def decode_image_file(path: str | os.PathLike) -> torch.Tensor:
    """An image file -> uint8 RGB (3, H, W).

    JPEG, PNG, WebP and GIF are decoded by torchvision; other formats Pillow reads (BMP,
    TIFF, ...) through Pillow. Deeper images are scaled to 8 bit (a 16-bit PNG's 0..65535
    to 0..255, rounded). Raises what the decoders raise for a file neither can read."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    with _quiet_torchvision_io():
        data = read_file(str(path))
    try:
        with _quiet_torchvision_io():
            img = decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as first:
        try:
            img = _decode_with_pillow(path)
        except Exception:  # noqa: BLE001 - report torchvision's reason, Pillow's is no better
            raise first from None
    return _to_uint8(img)


def _to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Scale a decoded image of another integer depth or float [0, 1] to uint8."""
    if img.dtype == torch.uint8:
        return img
    if img.dtype == torch.uint16:  # 65535 / 257 = 255 exactly
        return (img.to(torch.float32) / 257.0).round_().clamp_(0, 255).to(torch.uint8)
    if img.is_floating_point():
        return (img.to(torch.float32) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    raise TypeError(f"unsupported pixel type {img.dtype}")


def _decode_with_pillow(path) -> torch.Tensor:
    """Pillow's decoding of formats torchvision does not read, 16-bit modes scaled to 8 bit."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            a = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode != "I" or a.max() > 255 else 255.0
            a = np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
            rgb = np.repeat(a[..., None], 3, axis=-1)
        elif im.mode == "F":
            a = np.asarray(im, dtype=np.float64)
            rgb = np.repeat(np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        else:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _readable(path: Path) -> None:
    """Atomic writes create 0600 temp files; prepared data is shared: use the umask."""
    try:
        os.chmod(path, _FILE_MODE)
    except OSError:
        pass


_UNREACHABLE = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO, errno.ENOTCONN,
                getattr(errno, "ESTALE", -1), getattr(errno, "EHOSTDOWN", -1), getattr(errno, "ENOMEDIUM", -1)}


def os_error(e: OSError, path, root, command: str | None = None) -> DataError:
    """The DataError for an OS error while preparing into ``root`` (the DATA_DIR): what
    happened to which path (``e.filename`` when the OS names it, else ``path``), and what a
    user can do about it (permissions, a read-only or full disk, a disk that is gone)."""
    where = Path(e.filename) if getattr(e, "filename", None) else Path(path)
    root = Path(root)
    try:
        where, root = where.absolute(), root.absolute()
    except OSError:  # the working directory itself is gone
        pass
    reason = e.strerror or str(e)
    again = (f"run `{command}` again (a prepare resumes after the last crop it wrote)" if command
             else "run the same command again (it resumes where it stopped)")
    elsewhere = ("or pass --data-dir a folder on another disk (SRPOSE_DATA_DIR sets the default; "
                 "the notebooks read the same folder)")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataError(f"no space left on the device while writing {where} ({reason})",
                         f"free space on the disk holding {root} (or use another --data-dir) and {again}")
    if e.errno in (errno.EACCES, errno.EPERM):
        return DataError(f"permission denied on {where}: srpose cannot write the data folder {root}",
                         f"make {root} writable for your user (e.g. `chmod -R u+rwX {root}`, or ask its owner), "
                         "or pass --data-dir a folder you can write (SRPOSE_DATA_DIR sets the default; the "
                         f"notebooks read the same folder); then {again}")
    if e.errno == errno.EROFS:
        return DataError(f"{where} is on a read-only file system: srpose cannot write the data folder {root}",
                         f"remount that disk read-write, {elsewhere}; then {again}")
    if e.errno in _UNREACHABLE:
        return DataError(f"{where} cannot be reached ({reason}): the disk or share holding the data "
                         f"folder {root} may be unmounted or disconnected",
                         f"check that the disk holding {root} is mounted and connected, then {again}")
    return DataError(f"the operating system refused an operation on {where} ({type(e).__name__}: {reason})",
                     f"check the disk and the permissions of {root}, then {again}")


@contextmanager
def _os_errors_name_the_fix(path: Path, root: Path, command: str):
    """Any OS error while preparing (a full disk, permissions, a read-only or vanished disk):
    a DataError naming the file and how to go on (the temp file is already gone and
    ``meta.json`` still says incomplete, so a rerun resumes)."""
    try:
        yield
    except OSError as e:
        raise os_error(e, path, root, command) from e


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    with _atomic_file(path, "wb") as handle:
        handle.write(data)
    _readable(path)


def _check_setting(name: str, value, types, minimum, example: str, strict: bool = False, upper=None) -> None:
    """A DataError for a writer setting of the wrong type or out of range (checked before
    anything on disk is touched: a bad setting must not cost finished data)."""
    ok = isinstance(value, types) and not isinstance(value, bool)
    if ok:
        ok = (value > minimum if strict else value >= minimum) and (upper is None or value <= upper)
        ok = ok and math.isfinite(value)
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        if upper is not None:
            bound += f" and <= {upper}"
        raise DataError(f"{name} must be a number {bound}, got {value!r}", f"use {example}")


# ----------------------------------------------------------------------------- writer


class PreparedWriter:
    """Write a dataset into ``<root>/prepared/<dataset>/`` (``root`` is the DATA_DIR).

    Call :meth:`add` once per sample, in a deterministic order (indices are assigned per
    split in ``add`` order), then :meth:`finish`. A finished folder (a complete
    ``meta.json``) is never changed in place: the new build goes to
    :func:`staging_dir` beside it and :meth:`finish` swaps it in, so a failed or interrupted
    build leaves the finished data as it was (and the next build resumes the staging
    folder). An unfinished folder is resumed in place: creating a writer invalidates its
    ``meta.json``, keeps crops already on disk when they were made with the same crop size
    and scale, and with ``overwrite=True`` (``--force``) deletes them.
    ``command`` is what resumes the prepare (shown by readers of an unfinished folder).
    Every setting is checked before anything on disk is touched; OS errors (permissions,
    a read-only, full or vanished disk) become a :class:`DataError` naming the path and the fix.
    """

    def __init__(self, root: str | os.PathLike, dataset: str, skeleton_name: str,
                 crop_size: int = 256, crop_scale: float = 1.5, overwrite: bool = False,
                 command: str | None = None, jpeg_quality: int = 95):
        if skeleton_name not in SKELETONS:
            raise DataError(f"unknown skeleton {skeleton_name!r}", did_you_mean(skeleton_name, SKELETONS))
        _check_setting("crop_size", crop_size, numbers.Integral, 1, "e.g. 256 (pixels)")
        _check_setting("crop_scale", crop_scale, numbers.Real, 0.0, "e.g. 1.5 (the baselines' box scale)",
                       strict=True)
        _check_setting("jpeg_quality", jpeg_quality, numbers.Integral, 1, "e.g. 95", upper=100)
        self.data_dir = Path(root).expanduser()
        self.dataset = dataset
        self.skeleton = SKELETONS[skeleton_name]
        self.crop_size = int(crop_size)
        self.crop_scale = float(crop_scale)
        self.jpeg_quality = int(jpeg_quality)
        self.final = prepared_dir(self.data_dir, dataset)
        self.path = self.final  # where this writer writes (staging_dir beside a finished folder)
        self._overwrite = bool(overwrite)
        self.command = command or prepare_command(self.data_dir, dataset)
        self._rows: dict[str, list] = {k: [] for k in ARRAYS}
        self._count: dict[str, int] = {}
        self.written = 0  # crops written by this writer (not found on disk)
        self.reused = 0  # crops found on disk from an earlier, interrupted run
        with _os_errors_name_the_fix(self.final, self.data_dir, self.command):
            _finish_swap(self.data_dir, dataset)
            if _is_complete(self.final):
                self.path = staging_dir(self.data_dir, dataset)
                self.command = command or prepare_command(self.data_dir, dataset, force=True)
            self._start()

    @property
    def staged(self) -> bool:
        """Whether this writer builds beside a finished folder (swapped in by :meth:`finish`)."""
        return self.path != self.final

    def _start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        old = None
        for name in (STATE, META):  # settings the crops on disk were made with
            try:
                old = json.loads((self.path / name).read_text())
                break
            except (OSError, ValueError):
                pass
        for name in (META, ANNOTATIONS):  # the folder is not valid until finish()
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass
        state = {"dataset": self.dataset, "skeleton": self.skeleton.name,
                 "crop_size": self.crop_size, "crop_scale": self.crop_scale,
                 "command": self.command, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        same = isinstance(old, dict) and all(old.get(k) == state[k] for k in
                                              ("skeleton", "crop_size", "crop_scale"))
        journal = self.path / JOURNAL
        # a staging folder holds only crops of an unfinished --force: resumable whatever overwrite says
        if (self._overwrite and not self.staged) or not same:
            if (self.path / "images").exists():
                shutil.rmtree(self.path / "images")
            journal.unlink(missing_ok=True)
        self._journal: dict[tuple[str, int], list] = {}
        if journal.exists():
            for line in journal.read_text(errors="replace").splitlines():
                try:  # a line cut by the interruption is ignored: its crop is made again
                    entry = json.loads(line)
                    self._journal[(entry["split"], int(entry["index"]))] = entry["key"]
                except (ValueError, KeyError, TypeError):
                    continue
        atomic_write_json(self.path / STATE, state)
        self._journal_handle = open(journal, "a")

    def image_path(self, split: str, index: int) -> Path:
        return self.path / "images" / split / _image_name(index)

    def add_split(self, split: str) -> None:
        """Declare ``split`` so that it is listed (with 0 samples) even if nothing is added."""
        self._count.setdefault(split, 0)

    def next_index(self, split: str) -> int:
        """The index the next :meth:`add` to ``split`` gets."""
        return self._count.get(split, 0)

    def has(self, split: str, index: int | None = None) -> bool:
        """Whether the crop ``index`` (default: the next one) of ``split`` is already on
        disk from an earlier run, so a script can skip decoding its source image (then pass
        a callable, or ``None`` plus ``image_size`` or ``box``, to :meth:`add`, which checks
        that the crop was made from the same source image, box and flip)."""
        index = self.next_index(split) if index is None else index
        return (split, index) in self._journal and self.image_path(split, index).is_file()

    @staticmethod
    def _key(name: str, source_image: str, box: np.ndarray, flip: bool) -> list:
        return [str(name), str(source_image), [round(float(v), 3) for v in box], bool(flip)]

    def add(self, split: str, image, keypoints2d, visible, keypoints3d=None, intrinsics_full=None,
            subject: int = -1, sequence: int = -1, frame: int = -1, view: int = -1,
            source_image: str = "", box=None, name: str | None = None, flip: bool = False,
            image_size: tuple[int, int] | None = None) -> int:
        """Crop one sample and record it; returns its index within ``split``.

        ``image``: uint8 (3, H, W), or a callable returning it (called only when the crop
        is not on disk yet), or ``None`` when :meth:`has` says the crop exists.
        ``keypoints2d`` (K, 2) in full-image pixels; ``visible`` (K,); ``keypoints3d``
        (K, 3) camera metres; ``intrinsics_full`` (3, 3) of the full image. The crop box is
        :func:`~srpose_lib.data.crops.scale_box` of the visible keypoints (``crop_scale``,
        clamped to the image) unless ``box`` (x0, y0, side) is given. ``flip`` mirrors the
        crop (2D, 3D and intrinsics stay consistent, see
        :func:`~srpose_lib.data.crops.flip_crop`). ``name`` defaults to ``source_image``.
        ``image_size`` (W, H) avoids decoding ``image`` just to know its size.
        """
        K = self.skeleton.num_joints
        kp = np.asarray(keypoints2d, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible).astype(bool).reshape(-1)
        if kp.shape != (K, 2) or vis.shape != (K,):
            raise DataError(f"{self.dataset} sample {name or source_image!r}: keypoints {kp.shape} / visible "
                            f"{vis.shape} do not fit the {self.skeleton.name} skeleton ({K} joints)",
                            "map the dataset's joint order to the skeleton before adding samples")
        name = str(name if name is not None else source_image)
        bad = np.flatnonzero(vis & ~np.isfinite(kp).all(-1))
        if len(bad):
            j = int(bad[0])
            raise DataError(f"{self.dataset} {split} sample {name!r}: joint {j} ({self.skeleton.joint_names[j]}) "
                            f"is marked visible but its position {kp[j].tolist()} is not finite",
                            "mark joints with non-finite coordinates invisible before adding the sample "
                            "(the data scripts do: see --non-finite)")
        index = self.next_index(split)
        target = self.image_path(split, index)
        exists = self.has(split, index)

        def decoded():
            img = image() if callable(image) else image
            if img is None:
                raise DataError(f"no image given for {self.dataset} {split} sample {index} ({name!r}) and "
                                f"no crop of it is on disk at {target}", "pass the decoded image to add()")
            if not torch.is_tensor(img) or img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
                raise DataError(f"image {source_image or name!r} of {self.dataset} decoded to "
                                f"{getattr(img, 'dtype', type(img).__name__)} {tuple(getattr(img, 'shape', ()))}, "
                                "not 8-bit RGB (3, H, W)",
                                "convert the image to an 8-bit RGB PNG or JPEG (e.g. `python -c \"from PIL import "
                                "Image; Image.open('IN').convert('RGB').save('OUT.png')\"`), or restore it from "
                                "the official release")
            return img

        img = None
        if not exists or (box is None and image_size is None):
            img = decoded()
            image_size = (int(img.shape[2]), int(img.shape[1]))
        if box is None:
            box = scale_box(kp, vis, self.crop_scale, image_size)
        box = np.asarray(box, dtype=np.float64).reshape(3)
        key = self._key(name, source_image, box, flip)
        if exists and self._journal.get((split, index)) != key:  # a crop of another sample
            exists = False
            img = img if img is not None else decoded()
        S = self.crop_size
        kp_c = crop_keypoints(kp, box, S)
        k3 = np.full((K, 3), np.nan) if keypoints3d is None else np.asarray(keypoints3d, np.float64).reshape(K, 3)
        Kc = np.full((3, 3), np.nan) if intrinsics_full is None else crop_intrinsics(
            np.asarray(intrinsics_full, np.float64).reshape(3, 3), box, S)
        crop = None
        if not exists:
            crop = crop_image(img, box, S)
        if flip:
            crop, kp_c, k3, Kc = flip_crop(crop, kp_c, k3, Kc, S)
        if exists:
            self.reused += 1
        else:
            data = encode_jpeg(crop, quality=self.jpeg_quality)
            with _os_errors_name_the_fix(target, self.data_dir, self.command):
                _write_bytes_atomic(target, data)
            self._journal[(split, index)] = key
            self._journal_handle.write(json.dumps({"split": split, "index": index, "key": key}) + "\n")
            self._journal_handle.flush()
            self.written += 1
        r = self._rows
        r["name"].append(name)
        r["split"].append(str(split))
        r["keypoints2d"].append(kp_c.astype(np.float32))
        r["visible"].append(vis)
        r["keypoints3d"].append(k3.astype(np.float32))
        r["intrinsics"].append(np.asarray(Kc, np.float32))
        r["box"].append(box.astype(np.float32))
        r["flipped"].append(bool(flip))
        for column, value in zip(INT_FIELDS, (subject, sequence, frame, view)):
            r[column].append(int(value))
        r["source_image"].append(str(source_image))
        self._count[split] = index + 1
        return index

    def __len__(self) -> int:
        return len(self._rows["split"])

    def finish(self, source: dict | None = None) -> Path:
        """Write ``annotations.npz``, drop crops left over from an earlier, larger run,
        then ``meta.json`` with ``complete: true`` (last); a staged build then replaces the
        finished folder (two renames, see :func:`_finish_swap`). Returns the folder."""
        with _os_errors_name_the_fix(self.path, self.data_dir, self.command):
            self._finish(source)
            if self.staged:
                old = _old_dir(self.data_dir, self.dataset)
                if old.exists():
                    shutil.rmtree(old)
                os.replace(self.final, old)
                os.replace(self.path, self.final)
                shutil.rmtree(old, ignore_errors=True)
                self.path = self.final
        return self.final

    def _finish(self, source: dict | None) -> None:
        K = self.skeleton.num_joints
        r = self._rows
        n = len(self)
        arrays = {
            "name": np.array(r["name"], dtype=str).reshape(n),
            "split": np.array(r["split"], dtype=str).reshape(n),
            "keypoints2d": np.array(r["keypoints2d"], np.float32).reshape(n, K, 2),
            "visible": np.array(r["visible"], bool).reshape(n, K),
            "keypoints3d": np.array(r["keypoints3d"], np.float32).reshape(n, K, 3),
            "intrinsics": np.array(r["intrinsics"], np.float32).reshape(n, 3, 3),
            "box": np.array(r["box"], np.float32).reshape(n, 3),
            "flipped": np.array(r["flipped"], bool).reshape(n),
            **{k: np.array(r[k], np.int64).reshape(n) for k in INT_FIELDS},
            "source_image": np.array(r["source_image"], dtype=str).reshape(n),
        }
        with _atomic_file(self.path / ANNOTATIONS, "wb") as handle:
            np.savez(handle, **arrays)
        _readable(self.path / ANNOTATIONS)
        images = self.path / "images"
        if images.exists():  # crops of splits/indices this run did not produce
            for folder in images.iterdir():
                count = self._count.get(folder.name)
                if count is None:
                    shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
                    continue
                for f in folder.iterdir():
                    stem = f.name.split(".")[0]
                    if f.name.startswith(".") or not (stem.isdigit() and int(stem) < count):
                        f.unlink()
        for split, count in self._count.items():
            missing = [i for i in range(count) if not self.image_path(split, i).is_file()]
            if missing:
                raise DataError(f"{len(missing)} crops of {self.dataset}/{split} are missing in "
                                f"{images / split} (first: {_image_name(missing[0])})",
                                f"run `{prepare_command(self.data_dir, self.dataset, force=True)}`")
        meta = {
            "format": FORMAT_VERSION, "dataset": self.dataset, "skeleton": self.skeleton.name,
            "crop_size": self.crop_size, "crop_scale": self.crop_scale,
            "splits": dict(self._count), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "source": source or {}, "complete": True,
        }
        atomic_write_json(self.path / META, meta)
        _readable(self.path / META)
        self.close()
        for name in (STATE, JOURNAL):
            (self.path / name).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the journal (an unfinished prepare stays resumable)."""
        handle = getattr(self, "_journal_handle", None)
        if handle is not None and not handle.closed:
            handle.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


# ----------------------------------------------------------------------------- reader


class LazyImages:
    """The crops of a split, decoded from JPEG on access: behaves like a uint8 tensor
    (N, 3, S, S) for ``len``, ``shape``, ``dtype``, ``dim()`` and indexing with an int, a
    slice, a list or a LongTensor. ``fix`` is the command shown when a file is bad."""

    dtype = torch.uint8

    def __init__(self, paths: list[Path], size: int, fix: str = ""):
        self.paths = list(paths)
        self.size = int(size)
        self.fix = fix

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), 3, self.size, self.size))

    def dim(self) -> int:
        return 4

    def _decode(self, i: int) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        path = self.paths[i]
        try:
            with _quiet_torchvision_io():
                img = decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)
        except Exception as e:  # missing, truncated or not a JPEG
            raise DataError(f"crop {path} could not be read ({type(e).__name__}: {str(e).strip()[:200]})",
                            self.fix) from None
        if tuple(img.shape) != (3, self.size, self.size):
            raise DataError(f"crop {path} has shape {tuple(img.shape)}, expected (3, {self.size}, {self.size})",
                            self.fix)
        return img

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)) or (torch.is_tensor(index) and index.dim() == 0):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image index {i} out of range for {len(self)} images")
            return self._decode(i % len(self))
        if isinstance(index, slice):
            idx = range(len(self))[index]
        elif torch.is_tensor(index):
            if index.dtype == torch.bool:
                index = index.nonzero().flatten()
            idx = index.flatten().tolist()
        else:
            idx = np.asarray(index).reshape(-1).tolist()
        if not idx:
            return torch.empty(0, 3, self.size, self.size, dtype=torch.uint8)
        return torch.stack([self[int(i)] for i in idx])

    def __iter__(self):
        for i in range(len(self)):
            yield self._decode(i)

    def load(self) -> torch.Tensor:
        """All crops as one uint8 tensor (N, 3, S, S) in memory."""
        return self[torch.arange(len(self))]


@dataclass
class PreparedSplit:
    """One split of a prepared real dataset: the attributes of
    :class:`~srpose_lib.synth.benchmark.SynthSplit` plus ``view``, ``subject``, ``names``,
    ``source_images`` and ``flipped``; ``images`` is a :class:`LazyImages`."""

    task: str
    domain: str
    split: str
    skeleton: Skeleton
    images: LazyImages
    keypoints: torch.Tensor  # (N, K, 2) crop pixels
    visible: torch.Tensor  # (N, K) bool
    keypoints3d: torch.Tensor  # (N, K, 3) camera metres, NaN when unknown
    intrinsics: torch.Tensor  # (N, 3, 3) crop intrinsics, NaN when unknown
    boxes: torch.Tensor  # (N, 3) crop box in the original image (x0, y0, side)
    sequence: torch.Tensor  # (N,) int64, -1 when not applicable
    frame: torch.Tensor
    view: torch.Tensor
    subject: torch.Tensor
    names: list[str] = field(default_factory=list)
    source_images: list[str] = field(default_factory=list)
    flipped: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def pairs(self, max_gap: int = 3) -> torch.Tensor:
        """(base, driving) index pairs (M, 2), in both orders:

        * **temporal**: samples of one (subject, sequence, view) ordered by ``frame``,
          1..``max_gap`` positions apart in that order (positions, not frame numbers: a
          prepared dataset may keep only every n-th frame);
        * **multi-view**: other views of the same (subject, sequence, frame).

        Samples with ``sequence`` or ``frame`` -1 have no pairs (single images)."""
        seq = self.sequence.numpy()
        frm = self.frame.numpy()
        view = self.view.numpy()
        subj = self.subject.numpy()
        ok = np.flatnonzero((seq >= 0) & (frm >= 0))
        out: list[np.ndarray] = []

        def grouped(order: np.ndarray, keys: list[np.ndarray], max_offset: int | None):
            sk = [k[order] for k in keys]
            n = len(order)
            d = 1
            while n > d and (max_offset is None or d <= max_offset):
                same = np.ones(n - d, bool)
                for k in sk:
                    same &= k[:-d] == k[d:]
                if not same.any():
                    break  # groups are contiguous: no pair at offset d, none further
                a, b = order[:-d][same], order[d:][same]
                out.extend([np.stack([a, b], 1), np.stack([b, a], 1)])
                d += 1

        # temporal: sort by (subject, sequence, view, frame)
        order = ok[np.lexsort((frm[ok], view[ok], seq[ok], subj[ok]))]
        grouped(order, [subj, seq, view], max_gap)
        # multi-view: sort by (subject, sequence, frame, view); keep pairs of distinct views
        order = ok[np.lexsort((view[ok], frm[ok], seq[ok], subj[ok]))]
        start = len(out)
        grouped(order, [subj, seq, frm], None)
        for i in range(start, len(out)):
            p = out[i]
            out[i] = p[view[p[:, 0]] != view[p[:, 1]]]
        if not out:
            return torch.zeros(0, 2, dtype=torch.long)
        return torch.from_numpy(np.concatenate(out).astype(np.int64))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("keypoints", "visible", "keypoints3d", "intrinsics",
                                              "boxes", "sequence", "frame", "view", "subject")}


def _not_found(data_dir, dataset: str, path: Path) -> DataError:
    return DataError(f"prepared {dataset} not found in {path}",
                     f"run `{prepare_command(data_dir, dataset)}`")


def _read_meta(data_dir, dataset: str) -> tuple[Path, dict]:
    """The folder and its validated meta.json, or a DataError saying what to run."""
    path = prepared_dir(data_dir, dataset)
    if not path.exists():
        try:  # a swap cut between its renames: put the finished folder back
            _finish_swap(data_dir, dataset)
        except OSError:
            pass
    if not path.is_dir():
        raise _not_found(data_dir, dataset, path)
    meta_path = path / META
    if not meta_path.is_file():
        resume = prepare_command(data_dir, dataset)
        try:
            resume = json.loads((path / STATE).read_text()).get("command") or resume
        except (OSError, ValueError, AttributeError):
            pass
        if (path / STATE).exists() or (path / "images").exists():
            raise DataError(f"prepared {dataset} in {path} is incomplete: its prepare was interrupted "
                            f"(no {META})", f"run `{resume}` again: it resumes where it stopped")
        raise _not_found(data_dir, dataset, path)
    force = prepare_command(data_dir, dataset, force=True)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{meta_path} could not be read ({e})", f"run `{force}`") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path} is not a JSON object", f"run `{force}`")
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"{meta_path} has format {meta.get('format')!r}; this srpose reads format "
                        f"{FORMAT_VERSION}", f"run `{force}` to prepare it again")
    if meta.get("complete") is not True:
        raise DataError(f"prepared {dataset} in {path} is incomplete: its prepare was interrupted",
                        f"run `{prepare_command(data_dir, dataset)}` again: it resumes where it stopped")
    if meta.get("skeleton") not in SKELETONS:
        raise DataError(f"{meta_path} names an unknown skeleton {meta.get('skeleton')!r}", f"run `{force}`")
    if not isinstance(meta.get("splits"), dict) or not isinstance(meta.get("crop_size"), int):
        raise DataError(f"{meta_path} lacks 'splits' or 'crop_size'", f"run `{force}`")
    return path, meta


def _read_annotations(path: Path, meta: dict, data_dir, dataset: str) -> dict[str, np.ndarray]:
    ann_path = path / ANNOTATIONS
    force = prepare_command(data_dir, dataset, force=True)
    if not ann_path.is_file():
        raise DataError(f"{ann_path} is missing", f"run `{force}`")
    try:
        with np.load(ann_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{ann_path} could not be read ({type(e).__name__}: {e})", f"run `{force}`") from None
    K = SKELETONS[meta["skeleton"]].num_joints
    missing = [k for k in ARRAYS if k not in arrays and k != "flipped"]
    if missing:
        raise DataError(f"{ann_path} lacks the arrays {', '.join(missing)}", f"run `{force}`")
    n = len(arrays["split"]) if arrays["split"].ndim == 1 else -1
    expected = {"name": (n,), "split": (n,), "keypoints2d": (n, K, 2), "visible": (n, K),
                "keypoints3d": (n, K, 3), "intrinsics": (n, 3, 3), "box": (n, 3), "flipped": (n,),
                "subject": (n,), "sequence": (n,), "frame": (n,), "view": (n,), "source_image": (n,)}
    for key, shape in expected.items():
        if key in arrays and arrays[key].shape != shape:
            raise DataError(f"{ann_path}: array {key!r} has shape {arrays[key].shape}, expected "
                            f"{tuple('N' if s == n else s for s in shape)} with N = {n} and K = {K} "
                            f"({meta['skeleton']})", f"run `{force}`")
    counts = {str(s): int(c) for s, c in zip(*np.unique(arrays["split"], return_counts=True))}
    if counts != {s: int(c) for s, c in meta["splits"].items() if int(c) > 0}:
        raise DataError(f"{ann_path} holds {counts} samples per split but {path / META} says "
                        f"{meta['splits']}", f"run `{force}`")
    return arrays


def load_prepared(data_dir: str | os.PathLike, dataset: str, split: str) -> PreparedSplit:
    """One split of a prepared dataset; see the module docstring for the layout.

    Raises :class:`DataError` (naming the file and the command to run) for a missing or
    unfinished folder, an unreadable or inconsistent ``meta.json``/``annotations.npz`` and an
    unknown split; a crop that fails to decode raises when it is accessed."""
    path, meta = _read_meta(data_dir, dataset)
    if split not in meta["splits"]:
        raise DataError(f"prepared {dataset} has no split {split!r}", did_you_mean(split, meta["splits"]))
    a = _read_annotations(path, meta, data_dir, dataset)
    rows = np.flatnonzero(a["split"] == split)
    fix = f"run `{prepare_command(data_dir, dataset, force=True)}` to prepare it again"
    folder = path / "images" / split
    images = LazyImages([folder / _image_name(i) for i in range(len(rows))], meta["crop_size"], fix)

    def t(key, dtype):
        return torch.from_numpy(np.ascontiguousarray(a[key][rows])).to(dtype)

    visible = t("visible", torch.bool)
    keypoints = t("keypoints2d", torch.float32)
    bad = visible & ~torch.isfinite(keypoints).all(-1)
    if bool(bad.any()):  # a folder prepared before the data scripts checked this
        print(f"warning: prepared {dataset}/{split} in {path}: {int(bad.sum())} joints in "
              f"{int(bad.any(-1).sum())} samples are marked visible with non-finite coordinates; "
              f"they are treated as invisible (run `{prepare_command(data_dir, dataset, force=True)}` "
              "to prepare it again)", file=sys.stderr)
        visible = visible & ~bad

    flipped = t("flipped", torch.bool) if "flipped" in a else torch.zeros(len(rows), dtype=torch.bool)
    return PreparedSplit(
        task=dataset, domain="real", split=split, skeleton=SKELETONS[meta["skeleton"]], images=images,
        keypoints=keypoints, visible=visible,
        keypoints3d=t("keypoints3d", torch.float32), intrinsics=t("intrinsics", torch.float32),
        boxes=t("box", torch.float32), sequence=t("sequence", torch.int64), frame=t("frame", torch.int64),
        view=t("view", torch.int64), subject=t("subject", torch.int64),
        names=[str(s) for s in a["name"][rows]], source_images=[str(s) for s in a["source_image"][rows]],
        flipped=flipped, meta=meta)


def check_prepared(data_dir: str | os.PathLike, dataset: str) -> dict:
    """What ``--check`` reports about a prepared dataset, never raising:
    ``{"dataset", "path", "present", "complete", "splits": {split: count}, "problem"}``
    (``problem`` is the error message and fix when it cannot be loaded, else ``None``)."""
    path = prepared_dir(data_dir, dataset)
    report = {"dataset": dataset, "path": str(path), "present": path.is_dir(), "complete": False,
              "splits": {}, "problem": None}
    if not report["present"]:
        report["problem"] = f"not prepared: run `{prepare_command(data_dir, dataset)}`"
        return report
    try:
        path, meta = _read_meta(data_dir, dataset)
        _read_annotations(path, meta, data_dir, dataset)
    except DataError as e:
        report["problem"] = str(e)
        return report
    report["complete"] = True
    report["splits"] = {k: int(v) for k, v in meta["splits"].items()}
    report["crop_size"] = meta["crop_size"]
    report["created"] = meta.get("created")
    return report
