"""What every dataset script shares: folders, the command line, resumable downloads,
safe unpacking, raw verification, the prepare loop and the ``--check`` report.

A dataset script defines a :class:`DatasetScript` and calls :func:`run`::

    SCRIPT = DatasetScript(name="rhd", read=rhd.read, verify=rhd.verify, find=rhd.find_root)

    def main(argv=None):
        return run(SCRIPT, argv)

    if __name__ == "__main__":
        raise SystemExit(main())

``read(raw_dir, **options)`` returns ``{split: [RawSample, ...]}`` (ordered, deterministic),
``verify(raw_dir)`` a dict with a ``missing`` list (empty when the release is complete) and
any counts worth printing, ``find(raw_dir)`` returns the folder the samples' ``image`` paths
are relative to and raises :class:`DataError` when the release is not there. ``options`` adds dataset-specific command-line options (argparse keyword dicts)
passed to ``read``; ``loader`` decodes a sample's image where it is not a file (SURREAL's
video frames); ``read_progress`` passes ``show_progress`` to a ``read`` that reads many files.

Every option is checked before anything is read, downloaded or deleted. A finished prepared
folder is never changed in place: ``--force`` builds the new one beside it
(``prepared/.<name>.new``) and swaps it in only when complete. Keypoints with a non-finite
coordinate are prepared as invisible with a warning that counts them (``--non-finite error``
refuses them instead, naming the file, the sample and the joint); a split that comes out
empty is an error naming the raw files it was read from.

Exit codes of :func:`run`: 0 done (or ``--check``: prepared and complete), 1 ``--check``
found the dataset missing or incomplete, 2 a :class:`DataError` (printed with its fix; bad
options and OS errors such as a folder the user cannot write included), 130 interrupted
(run again to resume).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from srpose_lib.data.prepared import (PreparedWriter, check_prepared, decode_image_file, os_error,
                                      prepared_dir, staging_dir)
from srpose_lib.data.readers import DATASETS, RawSample, dataset_info
from srpose_lib.data.readers.files import image_size_of
from srpose_lib.errors import ConfigError, DataError, SrposeError
from srpose_lib.skeletons import SKELETONS
from srpose_lib.utils import atomic_write_text, progress, repo_root

# ----------------------------------------------------------------------------- folders


def default_data_dir() -> Path:
    """``SRPOSE_DATA_DIR`` or ``<repo>/data`` (the notebooks' default too)."""
    env = os.environ.get("SRPOSE_DATA_DIR", "").strip()
    return Path(env).expanduser() if env else repo_root() / "data"


def raw_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """``DATA_DIR/raw/<name>``: the official release, unpacked."""
    return Path(data_dir) / "raw" / name


def downloads_dir(data_dir: str | os.PathLike) -> Path:
    """``DATA_DIR/downloads``: archives as downloaded."""
    return Path(data_dir) / "downloads"


# ----------------------------------------------------------------------------- download


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, size: int | None = None, md5: str | None = None,
                sha256: str | None = None) -> list[str]:
    """Problems with a downloaded file (empty list when it checks out). Says so, in the
    returned notes, nothing: callers print :func:`checksum_note` for unknown checksums."""
    problems = []
    actual = path.stat().st_size
    if size is not None and actual != size:
        problems.append(f"size {actual} bytes, expected {size}")
    for algo, want in (("md5", md5), ("sha256", sha256)):
        if want:
            got = _file_digest(path, algo)
            if got.lower() != want.lower():
                problems.append(f"{algo} {got}, expected {want}")
    return problems


def checksum_note(filename: str, md5: str | None, sha256: str | None, size: int | None) -> str:
    if md5 or sha256:
        return f"{filename}: checksum verified"
    if size:
        return f"{filename}: no published checksum; checked its size ({size} bytes) only"
    return (f"{filename}: no published checksum or size; checked that the download completed "
            "(the server's Content-Length) and, after unpacking, the file counts")


def _total_from_headers(headers, have: int, status: int) -> int | None:
    rng = headers.get("Content-Range") if headers is not None else None
    if rng and "/" in rng:
        tail = rng.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    length = headers.get("Content-Length") if headers is not None else None
    if length and str(length).isdigit():
        return int(length) + (have if status == 206 else 0)
    return None


def download(url: str, dest: str | os.PathLike, size: int | None = None, md5: str | None = None,
             sha256: str | None = None, retries: int = 3, chunk: int = 1 << 20,
             timeout: float = 60.0, show_progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` resumably: bytes go to ``dest.part`` and an HTTP
    ``Range`` request continues it after an interruption (in this call, up to ``retries``
    times, or in the next run); the finished file is checked (``size``, ``md5``/``sha256``
    when known, else the server's length) and only then renamed to ``dest``. An existing
    ``dest`` that checks out is not downloaded again."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        problems = verify_file(dest, size, md5, sha256)
        if not problems:
            return dest
        raise DataError(f"{dest} exists but does not match the release ({'; '.join(problems)})",
                        f"delete {dest} and run again to download it afresh")
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    total = size
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "srpose-data-scripts"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:  # nothing left to fetch: the part file is complete
                    break
                raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}",
                                "check the address (the dataset page may have moved) or fetch "
                                f"the file by hand into {dest}") from None
            with response:
                status = getattr(response, "status", None) or response.getcode()
                if have and status != 206:  # the server ignored the Range header: start over
                    have = 0
                got_total = _total_from_headers(response.headers, have, status)
                total = total or got_total
                mode = "ab" if have else "wb"
                bar = progress(total=total, initial=have, unit="B", unit_scale=True,
                               unit_divisor=1024, desc=dest.name, disable=not show_progress)
                try:
                    with open(part, mode) as out:
                        while True:
                            block = response.read(chunk)
                            if not block:
                                break
                            out.write(block)
                            bar.update(len(block))
                finally:
                    bar.close()
            have = part.stat().st_size
            if got_total is not None and have < got_total:
                raise ConnectionError(f"connection closed after {have} of {got_total} bytes")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            if isinstance(e, OSError) and e.errno in _LOCAL_ERRORS:  # our disk, not the network: no retry
                raise os_error(e, part, dest.parent) from None
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise DataError(f"download of {url} was interrupted after {have} bytes ({e})",
                                "run the same command again: it resumes from "
                                f"{part}") from None
            time.sleep(min(2 ** attempt, 30) * _RETRY_DELAY_SCALE)
    problems = verify_file(part, size or total, md5, sha256)
    if problems:
        bad = part.with_name(part.name + ".bad")
        os.replace(part, bad)
        raise DataError(f"the download of {url} is corrupt ({'; '.join(problems)}); kept as {bad}",
                        "run the same command again to download it afresh")
    os.replace(part, dest)
    return dest


_RETRY_DELAY_SCALE = 1.0  # tests set 0
_LOCAL_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


# ----------------------------------------------------------------------------- unpack


def _safe_members_zip(zf: zipfile.ZipFile, target: Path):
    root = target.resolve()
    for info in zf.infolist():
        out = (target / info.filename).resolve()
        if root != out and root not in out.parents:
            raise DataError(f"archive member {info.filename!r} would unpack outside {target}",
                            "the archive is not the official release: download it again")
    return zf.infolist()


def _merge_move(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst`` without overwriting files already there."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
        src.rmdir()
    else:  # a file already in place: keep it
        if src.is_dir():
            shutil.rmtree(src)
        else:
            src.unlink()


def extract(archive: str | os.PathLike, target: str | os.PathLike, show_progress: bool = True) -> Path:
    """Unpack a zip or tar archive into ``target``, through a temporary folder that is moved
    into place only when unpacking finished, then mark it done (``.extracted-<archive>``):
    an interrupted unpack starts again on the next run, a finished one is skipped."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    marker = target / f".extracted-{archive.name}"
    if marker.is_file():
        return target
    tmp = target / f".extracting-{archive.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in progress(_safe_members_zip(zf, tmp), desc=f"unpack {archive.name}",
                                     unit="file", disable=not show_progress):
                    zf.extract(info, tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in progress(members, desc=f"unpack {archive.name}", unit="file",
                                  disable=not show_progress):
                    tf.extract(m, tmp, filter="data")
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive (truncated download?)",
                            f"delete {archive} and run the script again with --download")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{archive} could not be unpacked ({type(e).__name__}: {e})",
                        f"delete {archive} and run the script again with --download") from None
    for child in list(tmp.iterdir()):
        _merge_move(child, target / child.name)
    tmp.rmdir()
    atomic_write_text(marker, time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    return target


# ----------------------------------------------------------------------------- images


def convert_hint(path: Path) -> str:
    """How a user turns an image into one the prepare reads: 8-bit RGB, same name (Pillow)."""
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    return (f"convert it to 8-bit RGB under the same name, e.g. `python -c \"from PIL import Image; "
            f"Image.open('{path}').convert('RGB').save('{path}', format='{fmt}')\"`")


def decode_source(path: Path, fix: str):
    """Decode a source image to uint8 RGB (3, H, W) (16-bit and other depths scaled to 8 bit,
    formats torchvision does not read through Pillow), or a DataError naming its absolute
    path and what to do."""
    path = Path(path).absolute()
    if not path.is_file():
        raise DataError(f"image {path} is missing", fix)
    try:
        return decode_image_file(path)
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError for bad files
        text = str(e).strip()
        reason = f"{type(e).__name__}: {text.splitlines()[-1][:200] if text else ''}"
        if "Unsupported image file" in text or isinstance(e, TypeError):  # neither torchvision nor Pillow reads it
            raise DataError(f"image {path} is in a format srpose cannot read (neither torchvision, which "
                            "reads JPEG, PNG, WebP and GIF, nor Pillow could decode it)",
                            f"{convert_hint(path)}; or {fix}") from None
        raise DataError(f"image {path} could not be decoded ({reason})", fix) from None


def full_box(size: tuple[int, int]) -> tuple[float, float, float]:
    """The square box holding a whole ``(W, H)`` image, centred (the image itself when square)."""
    W, H = size
    side = float(max(W, H))
    return ((W - side) / 2, (H - side) / 2, side)


# ----------------------------------------------------------------------------- scripts


@dataclass
class DatasetScript:
    """A dataset's script: registry ``name`` and its reader's functions (see module doc)."""

    name: str
    read: Callable[..., dict]
    verify: Callable[[Path], dict]
    find: Callable[[Path], object]
    options: dict[str, dict] = field(default_factory=dict)  # "--flag": argparse kwargs
    image_fix: str = ""
    # how a sample's image is decoded: (root, sample, fix) -> uint8 (3, H, W); the default
    # decodes the file root / sample.image (a video-frame dataset passes its own)
    loader: Callable[[Path, RawSample, str], object] | None = None
    # read(raw, ..., show_progress=...) shows its own bar (it reads many annotation files)
    read_progress: bool = False
    # (root, split) -> descriptions of the raw files a split is read from, e.g.
    # "/.../Human36M_subject9_data.json (0 images)", named when the split comes out empty
    sources: Callable[[Path, str], list[str]] | None = None

    @property
    def info(self) -> dict:
        return dataset_info(self.name)

    def raw(self, data_dir) -> Path:
        return raw_dir(data_dir, self.name)

    def how_to_get(self, data_dir) -> str:
        """What to download and where it goes (for errors and ``--check``)."""
        info = self.info
        lines = []
        if info.get("downloads"):
            urls = ", ".join(d["url"] for d in info["downloads"])
            lines.append(f"`python -m data_scripts.{info['script']} --data-dir {data_dir} --download` "
                         f"fetches {urls} ({info.get('size', 'size unverified')})")
            lines.append("or by hand: " + info["manual"])
        else:
            reason = info.get("manual_reason", "no public download link")
            lines.append(f"by hand ({reason}): " + info["manual"])
        return "\n".join(lines).replace("DATA_DIR", str(data_dir))

    def check(self, data_dir) -> dict:
        """Report on the raw release and the prepared folder (never raises)."""
        data_dir = Path(data_dir)
        report = {"dataset": self.name, "title": self.info.get("title", self.name),
                  "prepared": check_prepared(data_dir, self.name), "raw_dir": str(self.raw(data_dir)),
                  "raw": None, "raw_problem": None, "how_to_get": self.how_to_get(data_dir)}
        try:
            self.find(self.raw(data_dir))
            report["raw"] = self.verify(self.raw(data_dir))
        except DataError as e:
            report["raw_problem"] = str(e)
        return report


def format_check(report: dict) -> str:
    """The text ``--check`` prints for one dataset."""
    info = DATASETS.get(report["dataset"], {})
    prep = report["prepared"]
    lines = [f"{report['dataset']} — {report['title']} [{info.get('skeleton', '?')}, {info.get('role', '?')}]"]
    if prep["complete"]:
        counts = ", ".join(f"{k} {v}" for k, v in prep["splits"].items())
        lines.append(f"  prepared: complete ({counts}) in {prep['path']}")
        expected = info.get("expected_counts")
        if expected and {k: v for k, v in prep["splits"].items() if k in expected} != expected:
            lines.append(f"  note: expected {expected} "
                         f"({'verified' if info.get('counts_verified') else 'unverified'})")
    else:
        lines.append(f"  prepared: missing — {prep['problem']}")
    raw = report["raw"]
    if raw is not None:
        missing = raw.get("missing") or []
        shown = {k: v for k, v in raw.items() if k not in ("missing", "root")}
        state = "complete" if not missing else f"INCOMPLETE, {len(missing)} missing (first: {missing[0]})"
        lines.append(f"  raw: {state} in {raw.get('root', report['raw_dir'])} {shown}")
    else:
        lines.append(f"  raw: missing in {report['raw_dir']}")
    if not prep["complete"]:
        lines += ["  get it: " + line for line in report["how_to_get"].splitlines()]
    lines.append(f"  licence: {info.get('licence', 'unverified')}; size: {info.get('size', 'unverified')}")
    return "\n".join(lines)


def resume_command(script: DatasetScript, data_dir: Path, argv: list[str],
                   keep_force: bool | None = None) -> str:
    """The command that resumes this prepare (the user's options, without --download, and
    without --force unless ``keep_force``: a --force beside a finished folder resumes its
    staged build with --force, one on an unfinished folder would start it again). By
    default --force stays when a staged build (``prepared/.<name>.new``) exists."""
    if keep_force is None:
        keep_force = staging_dir(data_dir, script.name).exists()
    keep, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--download", "--check") or (a == "--force" and not keep_force):
            continue
        if a == "--data-dir":
            skip = True
            continue
        if a.startswith("--data-dir="):
            continue
        keep.append(a)
    return " ".join([f"python -m data_scripts.{script.info['script']}", "--data-dir", str(data_dir)] + keep)


def fetch(script: DatasetScript, data_dir: Path, show_progress: bool = True) -> None:
    """Download and unpack every archive of the dataset into ``DATA_DIR/raw/<name>``."""
    info = script.info
    if not info.get("downloads"):
        raise DataError(f"{info['title']} cannot be downloaded automatically",
                        script.how_to_get(data_dir))
    for d in info["downloads"]:
        dest = downloads_dir(data_dir) / d["filename"]
        print(f"downloading {d['url']} -> {dest}")
        download(d["url"], dest, d.get("size"), d.get("md5"), d.get("sha256"), show_progress=show_progress)
        print(checksum_note(d["filename"], d.get("md5"), d.get("sha256"), d.get("size")))
        extract(dest, script.raw(data_dir), show_progress=show_progress)


def prepare(script: DatasetScript, data_dir: Path, splits: dict[str, list[RawSample]],
            crop_size: int = 256, force: bool = False, command: str | None = None,
            source: dict | None = None, show_progress: bool = True) -> Path:
    """Crop every sample into ``DATA_DIR/prepared/<name>`` (resuming an interrupted run)."""
    info = script.info
    root = Path(script.find(script.raw(data_dir)))
    fix = script.image_fix or (f"restore the file from the official archive ({script.how_to_get(data_dir)})")
    # one image at a time is many small tensor ops: extra intra-op threads only wait on
    # each other (10-100x slower on a busy machine); run them on one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    writer = PreparedWriter(data_dir, script.name, info["skeleton"], crop_size=crop_size,
                            overwrite=force, command=command)
    try:
        for split, samples in splits.items():
            writer.add_split(split)
            for s in progress(samples, desc=f"{script.name}/{split}", unit="img", disable=not show_progress):
                path = root / s.image
                box = s.box
                size = s.image_size
                if isinstance(box, str):  # "full": the whole image
                    size = size or image_size_of(path, fix)
                    box = full_box(size)
                if script.loader is None:
                    load = (lambda p=path: decode_source(p, fix))
                else:
                    load = (lambda s=s: script.loader(root, s, fix))
                writer.add(split, load, s.keypoints2d, s.visible,
                           keypoints3d=s.keypoints3d, intrinsics_full=s.intrinsics, subject=s.subject,
                           sequence=s.sequence, frame=s.frame, view=s.view, source_image=s.image, box=box,
                           name=s.name, flip=s.flip, image_size=size)
    except BaseException:
        writer.close()  # the folder stays an unfinished prepare: the next run resumes it
        raise
    finally:
        torch.set_num_threads(threads)
    provenance = {"raw_dir": str(root), "reader": f"srpose_lib.data.readers.{info['reader']}",
                  "crops_written": writer.written, "crops_reused": writer.reused, **(source or {})}
    return writer.finish(provenance)


def whole_number(minimum: int, what: str):
    """An argparse ``type`` for a whole number >= ``minimum`` (``what`` says what it counts):
    ``--every 0`` or ``--crop-size 0`` used to be taken as 1 or to fail after deleting data."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({what})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum} ({what}), got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


NON_FINITE = ("invisible", "error")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors raised as :class:`ConfigError` (printed like every other
    error, with a fix line) instead of exiting from inside the parser."""

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message}", f"run `{self.prog} --help` for the options and their defaults")


def check_writable(data_dir: Path, name: str, command: str) -> None:
    """Create ``DATA_DIR/prepared`` and write a test file in it, before anything is read or
    deleted: a folder the user cannot write, a read-only or absent disk is said up front."""
    folder = prepared_dir(data_dir, name).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".srpose-write-test-"):
            pass
    except OSError as e:
        raise os_error(e, folder, data_dir, command) from None


def check_splits(script: DatasetScript, data_dir: Path, root: Path, splits: dict[str, list[RawSample]]) -> None:
    """A DataError when a split came out empty, naming the raw files it was read from (the
    script's ``sources``) and the count expected."""
    empty = [split for split, samples in splits.items() if not samples]
    if not empty:
        return
    info = script.info
    expected = info.get("expected_counts") or {}
    parts = []
    for split in empty:
        want = f" (the release gives {expected[split]})" if split in expected else ""
        files = script.sources(root, split) if script.sources is not None else []
        where = ", ".join(files) if files else str(root)
        parts.append(f"the {split} split came out empty{want}: it is read from {where}")
    raise DataError(f"{info['title']}: " + "; ".join(parts),
                    "those files hold no usable samples: restore them from the official release (`python -m "
                    f"data_scripts.{info['script']} --data-dir {data_dir} --check` says what to get); "
                    "if options you chose keep fewer samples (--every, --task, --min-visible), change them")


def screen_keypoints(script: DatasetScript, root: Path, splits: dict[str, list[RawSample]],
                     policy: str, command: str) -> tuple[dict[str, list[RawSample]], dict]:
    """Joints marked visible whose 2D position is not finite (NaN or inf in the release's
    annotations): ``policy`` ``"error"`` raises a DataError naming the annotation file, the
    sample and the joint; ``"invisible"`` marks them invisible (and leaves out samples then
    without a finite keypoint to put a crop box around) and prints a warning counting them.
    Returns the screened splits and the counts (stored in meta.json's provenance)."""
    import dataclasses

    import numpy as np

    skeleton = SKELETONS[script.info["skeleton"]]
    joints = samples_hit = dropped = 0
    first = None
    out: dict[str, list[RawSample]] = {}
    for split, samples in splits.items():
        kept = []
        for s in samples:
            kp = np.asarray(s.keypoints2d, dtype=np.float64).reshape(-1, 2)
            vis = np.asarray(s.visible).astype(bool).reshape(-1)
            bad = vis & ~np.isfinite(kp).all(-1) if kp.shape[0] == vis.shape[0] else np.zeros(0, bool)
            if not bad.any():
                kept.append(s)
                continue
            joints += int(bad.sum())
            samples_hit += 1
            if first is None:
                j = int(np.flatnonzero(bad)[0])
                name = skeleton.joint_names[j] if j < skeleton.num_joints else "?"
                first = (f"{split} sample {s.name!r}, joint {j} ({name}) at "
                         f"({kp[j, 0]:g}, {kp[j, 1]:g}), in {s.annotation or root}")
            vis = vis & ~bad
            if s.box is None and not vis.any():  # no keypoint left to put the crop box around
                dropped += 1
                continue
            kept.append(dataclasses.replace(s, visible=vis))
        out[split] = kept
    counts = {"policy": policy, "joints": joints, "samples": samples_hit, "samples_left_out": dropped}
    if not joints:
        return splits, counts
    title = script.info["title"]
    if policy == "error":
        raise DataError(f"{title}: a visible keypoint has no finite position: {first} "
                        f"({joints} such joints in {samples_hit} samples)",
                        "restore that annotation file from the official release; or run "
                        f"`{_without_non_finite(command)} --non-finite invisible` to prepare such joints as invisible")
    left_out = (f"; {dropped} samples without a finite keypoint are left out" if dropped else "")
    print(f"warning: {script.name}: {joints} visible joints in {samples_hit} samples have a non-finite "
          f"position (first: {first}); they are prepared as invisible{left_out} "
          "(`--non-finite error` refuses them instead)", file=sys.stderr)
    return out, counts


def _without_non_finite(command: str) -> str:
    words = command.split(" ")
    out = []
    for i, w in enumerate(words):
        if w.startswith("--non-finite=") or w == "--non-finite" or (i and words[i - 1] == "--non-finite"):
            continue
        out.append(w)
    return " ".join(out)


def build_parser(script: DatasetScript) -> argparse.ArgumentParser:
    info = script.info
    p = _Parser(
        prog=f"python -m data_scripts.{info['script']}",
        description=f"Download, verify and prepare {info['title']} into DATA_DIR/prepared/{script.name}.")
    p.add_argument("--data-dir", default=None,
                   help="the data folder (default: SRPOSE_DATA_DIR or <repo>/data)")
    p.add_argument("--check", action="store_true", help="report what is present and what is missing")
    p.add_argument("--force", action="store_true",
                   help="prepare again from scratch, beside the finished folder, which is replaced only "
                        "when the new one is complete (an interrupted --force resumes with --force)")
    p.add_argument("--download", action="store_true",
                   help="download the release first where a public URL exists")
    p.add_argument("--crop-size", type=whole_number(1, "the crop side in pixels, e.g. 256"), default=256,
                   help="crop size in pixels (default 256)")
    p.add_argument("--non-finite", choices=NON_FINITE, default="invisible",
                   help="keypoints with a NaN or infinite coordinate: prepare them as invisible and say "
                        "how many (default), or stop with an error naming the file, sample and joint")
    for flag, kw in script.options.items():
        p.add_argument(flag, **kw)
    return p


def run(script: DatasetScript, argv: list[str] | None = None, show_progress: bool = True) -> int:
    """The whole command line of a dataset script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    data_dir = default_data_dir()
    try:
        args = build_parser(script).parse_args(argv)
        data_dir = Path(args.data_dir).expanduser() if args.data_dir else data_dir
        if args.check:
            report = script.check(data_dir)
            print(format_check(report))
            return 0 if report["prepared"]["complete"] else 1
        try:
            return _prepare_command(script, data_dir, args, argv, show_progress)
        except OSError as e:  # permissions, a read-only, full or vanished disk
            raise os_error(e, data_dir, data_dir, resume_command(script, data_dir, argv)) from e
    except SrposeError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.fix:
            print(f"  fix: {e.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run `{resume_command(script, data_dir, argv)}` to resume", file=sys.stderr)
        return 130


def _prepare_command(script, data_dir: Path, args, argv, show_progress: bool) -> int:
    info = script.info
    state = check_prepared(data_dir, script.name)
    staging = staging_dir(data_dir, script.name)
    if state["complete"] and not args.force and staging.exists():
        print(f"{script.name}: note: an unfinished --force build is in {staging}: run with --force to "
              "finish it, or delete that folder", file=sys.stderr)
    if state["complete"] and not args.force:
        if state.get("crop_size") not in (None, args.crop_size):
            raise DataError(f"{prepared_dir(data_dir, script.name)} holds {state['crop_size']} px crops, "
                            f"not {args.crop_size}", "add --force to prepare it again at the new size")
        counts = ", ".join(f"{k} {v}" for k, v in state["splits"].items())
        print(f"{script.name}: already prepared ({counts}) in {state['path']}; --force prepares it again")
        return 0
    if args.download:
        fetch(script, data_dir, show_progress)
    raw = script.raw(data_dir)
    try:
        script.find(raw)
    except DataError as e:
        raise DataError(e.message, script.how_to_get(data_dir)) from None
    report = script.verify(raw)
    missing = report.get("missing") or []
    if missing:
        shown = "; ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DataError(f"{info['title']} in {raw} is incomplete: missing {shown}", script.how_to_get(data_dir))
    print(f"{script.name}: raw release found: "
          + ", ".join(f"{k} {v}" for k, v in report.items() if k not in ("missing", "root")))
    command = resume_command(script, data_dir, argv, keep_force=bool(args.force and state["complete"]))
    check_writable(data_dir, script.name, command)
    options = {k.lstrip("-").replace("-", "_"): getattr(args, k.lstrip("-").replace("-", "_"))
               for k in script.options}
    splits = script.read(raw, **options, **({"show_progress": show_progress} if script.read_progress else {}))
    root = Path(script.find(raw))
    splits, non_finite = screen_keypoints(script, root, splits, args.non_finite, command)
    check_splits(script, data_dir, root, splits)
    counts = {k: len(v) for k, v in splits.items()}
    print(f"{script.name}: {', '.join(f'{k} {v}' for k, v in counts.items())} samples to prepare")
    expected = info.get("expected_counts")
    defaults = {k.lstrip("-").replace("-", "_"): kw.get("default") for k, kw in script.options.items()}
    if expected and options == defaults and counts != expected:
        print(f"{script.name}: note: expected {expected} "
              f"({'verified' if info.get('counts_verified') else 'unverified'}); got {counts}")
    path = prepare(script, data_dir, splits, crop_size=args.crop_size, force=args.force, command=command,
                   source={"options": options, "raw_report": {k: v for k, v in report.items() if k != "missing"},
                           "non_finite_keypoints": non_finite},
                   show_progress=show_progress)
    print(f"{script.name}: prepared {counts} in {path}")
    return 0
