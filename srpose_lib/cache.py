"""Share a trained cache: pack the checkpoints of a run mode into one file, verify and unpack it.

    python -m srpose_lib.cache list   --mode quick                 # what an export would pack
    python -m srpose_lib.cache export --mode quick --out srpose-quick.tar
    python -m srpose_lib.cache import srpose-quick.tar              # into SRPOSE_CACHE_DIR or artifacts/cache

A class trains once (or an instructor does), exports, and every student imports: the series then
loads every stage instead of training it (``loaded cached <stage> ...`` in each notebook).

**Which runs belong to a mode.** Checkpoints are keyed by a hash of their configuration
(:func:`srpose_lib.train.cache.run_key`), and each ``final.pt`` stores that configuration. Every
stage's configuration holds (directly or nested in its pre-training, StyleNet, lifting, predictor)
the benchmark it trains on, and the benchmark sizes differ per mode (``presets.benchmark_for``:
image size and the number of train/val/test images). A run belongs to a mode when every benchmark
in its configuration has that mode's sizes. This reads what the cache already holds, so nothing
about training had to change, and it also finds runs a notebook trained with its own knobs
(``EPOCHS``, seeds) that no preset would name.

**The archive** is a tar file (``.tar.gz``/``.tgz`` compressed) holding ``srpose-cache.json`` —
the manifest: archive format, :data:`~srpose_lib.train.cache.FORMAT_VERSION`, srpose/torch
versions, the mode, and per member its path, size and SHA-256, per run its stage, task and
config hash — and ``runs/<key>/...``, each finished run's folder without its ``progress.pt``.

**Import** refuses, naming the problem and the fix: another archive format or checkpoint
format version (these checkpoints would not load), another srpose version (unless
``--allow-version-mismatch``), a member whose SHA-256 or size differs from the manifest, a
member the manifest does not list, a path outside ``runs/<key>/``. Everything is extracted and
verified into a temporary folder inside the cache first; then each run folder moves into
``runs/`` with one rename, so a cache is never half-unpacked (a crash leaves whole runs or none).
Runs already in the cache are kept (the same key means the same configuration).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import utils
from .errors import CacheError, SrposeError

#: Bump when the archive layout or manifest changes meaning.
ARCHIVE_FORMAT = 1
MANIFEST = "srpose-cache.json"
KIND = "srpose-trained-cache"
#: The benchmark fields that tell the run modes apart (see ``presets.benchmark_for``).
SIZE_FIELDS = ("image_size", "num_train", "num_val", "num_test")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------
# which runs belong to a mode


@dataclass
class CachedRun:
    """One finished run folder ``runs/<key>`` of a cache."""

    key: str
    folder: Path
    stage: str
    modes: tuple[str, ...]
    tasks: tuple[str, ...]
    format_version: object

    @property
    def config_hash(self) -> str:
        return self.key.rsplit("-", 1)[-1]


def _benchmarks(node) -> Iterable[dict]:
    """Every benchmark dict nested in a stored configuration."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "benchmark" and isinstance(value, dict):
                yield value
            yield from _benchmarks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _benchmarks(value)


def modes_of(config: dict) -> tuple[str, ...]:
    """The run modes whose benchmark sizes every benchmark in ``config`` has (empty when none
    or when the configuration holds no benchmark)."""
    from .config import to_dict
    from .presets import RUN_MODES, benchmark_for

    benches = list(_benchmarks(config))
    if not benches:
        return ()
    found = []
    for mode in RUN_MODES:
        ok = True
        for bench in benches:
            try:
                preset = to_dict(benchmark_for(mode, bench.get("task", "")))
            except SrposeError:
                ok = False
                break
            if any(bench.get(f) != preset[f] for f in SIZE_FIELDS if f in preset):
                ok = False
                break
        if ok:
            found.append(mode)
    return tuple(found)


def _read_header(final: Path) -> dict:
    """A checkpoint's dict without reading its tensors into memory (memory-mapped)."""
    import torch

    try:
        return torch.load(final, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - old (non-zip) format or unreadable: try a plain load
        return torch.load(final, map_location="cpu", weights_only=False)


def scan(cache_dir: Path) -> tuple[list[CachedRun], list[tuple[Path, str]]]:
    """The finished runs of a cache, and ``(folder, why)`` for the folders that are skipped."""
    runs, skipped = [], []
    root = Path(cache_dir) / "runs"
    if not root.is_dir():
        return runs, skipped
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        final = folder / "final.pt"
        if not final.exists():
            skipped.append((folder, "unfinished (no final.pt)"))
            continue
        try:
            ckpt = _read_header(final)
        except Exception as err:  # noqa: BLE001
            skipped.append((folder, f"unreadable final.pt ({type(err).__name__})"))
            continue
        config = ckpt.get("config") or {}
        tasks = tuple(sorted({b.get("task", "") for b in _benchmarks(config)}))
        runs.append(CachedRun(folder.name, folder, str(ckpt.get("stage")), modes_of(config), tasks,
                              ckpt.get("format_version")))
        del ckpt
    return runs, skipped


def runs_for_mode(cache_dir: Path, mode: str) -> list[CachedRun]:
    return [r for r in scan(cache_dir)[0] if mode in r.modes]


# ---------------------------------------------------------------------------------------
# export


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _tar_mode(path: Path, writing: bool) -> str:
    name = path.name.lower()
    if writing:
        return "w:gz" if name.endswith((".gz", ".tgz")) else "w"
    return "r:*"


def export_cache(mode: str, out: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 log=print) -> dict:
    """Pack the finished runs of ``mode`` from ``cache_dir`` into the archive ``out`` (written
    atomically); returns the manifest."""
    from .presets import RUN_MODES
    from .train.cache import FORMAT_VERSION

    if mode not in RUN_MODES:
        raise CacheError(f"unknown run mode {mode!r}", f"use one of {', '.join(RUN_MODES)}")
    cache = Path(cache_dir) if cache_dir is not None else utils.default_cache_dir()
    runs = runs_for_mode(cache, mode)
    if not runs:
        raise CacheError(
            f"no finished {mode} runs in {cache / 'runs'}",
            f"train them first (make run MODE={mode}, or python -m srpose_lib.runner --mode {mode}), "
            "or point SRPOSE_CACHE_DIR / --cache-dir at the cache that holds them")
    stale = [r.key for r in runs if r.format_version != FORMAT_VERSION]
    if stale:
        raise CacheError(f"{len(stale)} run(s) have checkpoint format {runs[0].format_version}, this srpose "
                         f"reads {FORMAT_VERSION}: {', '.join(stale[:3])}",
                         "delete those run folders and train them again before exporting")
    members = []
    for run in runs:
        for path in sorted(p for p in run.folder.rglob("*") if p.is_file()):
            if path.name == "progress.pt" or path.name.startswith("."):
                continue
            rel = path.relative_to(cache).as_posix()
            members.append({"path": rel, "size": path.stat().st_size, "sha256": _sha256(path)})
    v = utils.versions()
    manifest = {
        "kind": KIND, "archive_format": ARCHIVE_FORMAT, "checkpoint_format": FORMAT_VERSION,
        "mode": mode, "srpose": v.get("srpose"), "torch": v.get("torch"),
        "torchvision": v.get("torchvision"), "python": v.get("python"), "git_sha": utils.git_sha(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": [{"key": r.key, "stage": r.stage, "tasks": list(r.tasks), "config_hash": r.config_hash,
                  "modes": list(r.modes)} for r in runs],
        "members": members,
    }
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, _tar_mode(target, writing=True)) as tar:
            data = (json.dumps(manifest, indent=2) + "\n").encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for member in members:
                tar.add(cache / member["path"], arcname=member["path"], recursive=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; an archive is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    size = sum(m["size"] for m in members)
    log(f"exported {len(runs)} {mode} run(s), {len(members)} file(s), {size / 1e6:.1f} MB of checkpoints "
        f"from {cache} to {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return manifest


# ---------------------------------------------------------------------------------------
# import


def _major_minor(version: str | None) -> tuple[str, ...]:
    return tuple((version or "").split("+")[0].split(".")[:2])


def check_manifest(manifest: dict, archive: Path, allow_version_mismatch: bool = False) -> None:
    """Refuse an archive this srpose cannot use, with the reason and the fix."""
    from .train.cache import FORMAT_VERSION

    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise CacheError(f"{archive} is not an srpose cache archive (its {MANIFEST} is missing or foreign)",
                         "export one with python -m srpose_lib.cache export --mode MODE --out FILE")
    if manifest.get("archive_format") != ARCHIVE_FORMAT:
        raise CacheError(f"{archive} has archive format {manifest.get('archive_format')}, this srpose reads "
                         f"format {ARCHIVE_FORMAT}",
                         "export it again with this version of srpose (or use the srpose that wrote it)")
    if manifest.get("checkpoint_format") != FORMAT_VERSION:
        raise CacheError(f"{archive} holds checkpoints of format version {manifest.get('checkpoint_format')}, "
                         f"this srpose reads format {FORMAT_VERSION}: they would not load",
                         f"use srpose {manifest.get('srpose')} (the version that exported it), or train the "
                         "stages anew with this version and export again")
    here = utils.versions().get("srpose")
    if manifest.get("srpose") != here and not allow_version_mismatch:
        raise CacheError(f"{archive} was exported by srpose {manifest.get('srpose')}, this is srpose {here}",
                         "use the same srpose version as the exporter (git checkout its commit "
                         f"{manifest.get('git_sha') or '?'}), or pass --allow-version-mismatch if you know "
                         "the training code did not change")
    for member in manifest.get("members", []):
        _check_member_path(member.get("path", ""), archive)


def _check_member_path(path: str, archive: Path) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "runs" or not all(_KEY_RE.match(p) and p not in (".", "..")
                                                       for p in parts[1:]):
        raise CacheError(f"{archive}: member {path!r} is not a file under runs/<key>/",
                         "the archive is corrupt or was not written by srpose; export it again")
    return parts[1], "/".join(parts[2:])


def _check_checkpoint(final: Path, run: dict, archive: Path) -> None:
    """The unpacked checkpoint says what the manifest says: format, stage, and a key of that stage."""
    from .train.cache import FORMAT_VERSION

    try:
        ckpt = _read_header(final)
    except Exception as err:  # noqa: BLE001
        raise CacheError(f"{archive}: {run['key']}/final.pt cannot be read ({type(err).__name__})",
                         "nothing was imported; export the archive again") from None
    problems = []
    if ckpt.get("format_version") != FORMAT_VERSION:
        problems.append(f"checkpoint format {ckpt.get('format_version')} != {FORMAT_VERSION}")
    if ckpt.get("stage") != run.get("stage") or not run["key"].startswith(f"{ckpt.get('stage')}-"):
        problems.append(f"stage {ckpt.get('stage')!r} does not match run {run['key']}")
    if problems:
        raise CacheError(f"{archive}: {run['key']}/final.pt: " + "; ".join(problems),
                         "nothing was imported; export the archive again with this srpose version")


def read_manifest(archive: str | os.PathLike) -> dict:
    path = Path(archive)
    if not path.is_file():
        raise CacheError(f"cache archive {path} does not exist",
                         "give the file written by python -m srpose_lib.cache export")
    try:
        with tarfile.open(path, "r:*") as tar:
            handle = tar.extractfile(MANIFEST)
            return json.loads(handle.read().decode())
    except (tarfile.TarError, KeyError, AttributeError, json.JSONDecodeError, OSError, EOFError) as err:
        raise CacheError(f"{path} is not a readable srpose cache archive ({type(err).__name__}: {err})",
                         "download or export it again; an interrupted copy is usually the cause") from None


def import_cache(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 allow_version_mismatch: bool = False, log=print) -> dict:
    """Verify ``archive`` and unpack its runs into ``cache_dir``; returns ``{"imported": [...],
    "kept": [...]}`` (run keys; kept = already in the cache)."""
    path = Path(archive)
    manifest = read_manifest(path)
    check_manifest(manifest, path, allow_version_mismatch)
    cache = Path(cache_dir) if cache_dir is not None else utils.default_cache_dir()
    cache = utils.ensure_writable_dir(cache, "cache")
    expected = {m["path"]: m for m in manifest["members"]}
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache / "runs", prefix=".import-"))
    try:
        seen = set()
        with tarfile.open(path, "r:*") as tar:
            for info in tar:
                if info.name == MANIFEST:
                    continue
                if info.name not in expected:
                    raise CacheError(f"{path}: member {info.name!r} is not listed in its manifest",
                                     "the archive was altered after export; export it again")
                if not info.isfile():
                    raise CacheError(f"{path}: member {info.name!r} is not a regular file",
                                     "the archive was altered after export; export it again")
                want = expected[info.name]
                key, rel = _check_member_path(info.name, path)
                dest = staging / key / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                source = tar.extractfile(info)
                with open(dest, "wb") as handle:
                    for block in iter(lambda: source.read(_CHUNK), b""):
                        digest.update(block)
                        size += len(block)
                        handle.write(block)
                    handle.flush()
                    os.fsync(handle.fileno())
                if size != want["size"] or digest.hexdigest() != want["sha256"]:
                    raise CacheError(
                        f"{path}: {info.name} is damaged (sha256 {digest.hexdigest()[:12]}…, {size} bytes; the "
                        f"manifest says {want['sha256'][:12]}…, {want['size']} bytes)",
                        "nothing was imported; download or export the archive again")
                seen.add(info.name)
        missing = sorted(set(expected) - seen)
        if missing:
            raise CacheError(f"{path}: {len(missing)} member(s) listed in the manifest are missing: "
                             f"{', '.join(missing[:3])}", "nothing was imported; export the archive again")
        for run in manifest["runs"]:  # everything checked before the first run moves in
            _check_member_path(f"runs/{run['key']}/final.pt", path)
            if not (staging / run["key"] / "final.pt").exists():
                raise CacheError(f"{path}: run {run['key']} has no final.pt", "export the archive again")
            _check_checkpoint(staging / run["key"] / "final.pt", run, path)
        imported, kept = [], []
        for run in manifest["runs"]:
            key = run["key"]
            src, dst = staging / key, cache / "runs" / key
            if (dst / "final.pt").exists():
                kept.append(key)
                continue
            if dst.exists():  # an unfinished run of the same configuration: the finished one wins
                aside = staging / f".old-{key}"
                os.replace(dst, aside)
            os.replace(src, dst)  # one rename per run: whole runs or none
            imported.append(key)
        utils._fsync_dir(cache / "runs")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"imported {len(imported)} {manifest['mode']} run(s) into {cache}"
        + (f"; {len(kept)} already there, kept" if kept else "")
        + f" (exported by srpose {manifest['srpose']}, torch {manifest['torch']})")
    return {"imported": imported, "kept": kept, "manifest": manifest}


# ---------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m srpose_lib.cache",
                                     description="Export and import the trained checkpoints of a run mode.")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="pack the finished runs of a mode into FILE")
    exp.add_argument("--mode", required=True, help="smoke, quick or full")
    exp.add_argument("--out", required=True, metavar="FILE", help="archive to write (.tar, or .tar.gz to compress)")
    imp = sub.add_parser("import", help="verify FILE and unpack its runs into the cache")
    imp.add_argument("archive", metavar="FILE")
    imp.add_argument("--allow-version-mismatch", action="store_true",
                     help="accept an archive exported by another srpose version (same checkpoint format)")
    lst = sub.add_parser("list", help="the finished runs of the cache and their modes")
    lst.add_argument("--mode", help="only this mode")
    for p in (exp, imp, lst):
        p.add_argument("--cache-dir", metavar="DIR",
                       help="the cache folder (default: $SRPOSE_CACHE_DIR, else <repo>/artifacts/cache)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 1 refused (the message says why), 2 usage."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if args.command == "export":
            export_cache(args.mode, args.out, args.cache_dir)
        elif args.command == "import":
            import_cache(args.archive, args.cache_dir, args.allow_version_mismatch)
        else:
            cache = Path(args.cache_dir) if args.cache_dir else utils.default_cache_dir()
            runs, skipped = scan(cache)
            for run in runs:
                if args.mode is None or args.mode in run.modes:
                    print(f"{run.key:<44} {run.stage:<13} {','.join(run.tasks):<10} "
                          f"{','.join(run.modes) or '(no mode)'}")
            for folder, why in skipped:
                print(f"{folder.name:<44} skipped: {why}")
    except SrposeError as err:
        print(f"srpose cache: error: {err.message}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {err.fix}", file=sys.stderr)
        return 1
    if args.command != "list":
        print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
