"""SURREAL — Learning from Synthetic Humans (Varol et al., CVPR 2017), the synthetic body source.

Official layout (``SURREAL_v1.tar.gz``, or only the files named below fetched with the
repository's ``download/download_surreal.sh``, unpacked into ``DATA_DIR/raw/surreal/``)::

    cmu/{train,val,test}/run{0,1,2}/<sequence>/<sequence>_c%04d.mp4        RGB video, 320 x 240
    cmu/{train,val,test}/run{0,1,2}/<sequence>/<sequence>_c%04d_info.mat   annotations
    (..._depth.mat, ..._segm.mat, ..._gtflow.mat are not needed)

``_info.mat`` holds ``joints2D`` (2, 24, T) image pixels, ``joints3D`` (3, 24, T) world
metres, ``camLoc`` (3, 1) and more (pose, shape, zrot, ...); T is mostly 100. MATLAB drops a
trailing singleton dimension, so a one-frame clip stores (2, 24) and (3, 24).

Camera (SURREAL ``datageneration/misc/3Dto2D``): ``K = [[600, 0, 160], [0, 600, 120],
[0, 0, 1]]`` for every clip; world -> camera ``x = R (X - camLoc)`` with
``R = [[0, 0, -1], [0, 1, 0], [-1, 0, 0]]``; ``K x`` reproduces ``joints2D``, which SURREAL
rounds to whole pixels. ``R`` has determinant -1: the images are mirror images, which is
why TLL's joint map crosses left and right (see :mod:`.smpl`).

What this reader reproduces (TLL ``surreal.py``, which UniFrame copies):

* **Remap** SMPL-24 to Body16 with TLL's ``(7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14,
  19, 21)``: SMPL's L-wrist lands in ``r_wrist`` (the left/right cross), shoulders are the
  collars, thorax is spine3. **All joints visible.**
* **Splits**: each split reads its own folder (all three runs); the folder's samples are
  shuffled with ``random.seed(42)`` and ``k = min(int(0.2 N), 3200)``: ``train`` = the train
  folder less its first ``k``, ``test`` = the first ``k`` of the test folder, ``val`` = the
  whole val folder. No sampling with replacement.
* **Crop**: the 1.5x square box of the 16 keypoints, clamped to the 320 x 240 frame (TLL's
  release is "1.5x bigger than" the body).

srpose's choices where TLL is silent (its processed release and conversion script are lost):

* **Frames**: one frame in ``every`` of each clip (default 10: frames 0, 10, ..., 90), as
  the video's own frames, decoded with PyAV (:class:`FrameReader`).
* **Order**: samples are listed run by run, clips sorted by path, frames ascending; the
  seed-42 rule is applied to that list (the lost release's order is unknown, so the exact
  membership cannot match TLL's), and each split keeps that order rather than the shuffled
  one, so that every video is decoded once.
* **2D/3D**: ``keypoints2d`` are the released ``joints2D`` (whole pixels, within 0.5 px of
  the projection of ``keypoints3d``), ``keypoints3d`` the camera coordinates of
  ``joints3D``.
* **Ids**: ``sequence`` = the clip's index in its split (sorted), ``frame`` = its frame
  index; ``subject`` and ``view`` = -1 (each clip renders a random body; the runs are
  differently cut clips, not synchronised views). Names are
  ``cmu/<split>/run<k>/<seq>/<seq>_c%04d.mp4#<frame>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ...utils import progress
from . import RawSample, check_every, smpl, tll_split
from .files import as_array, load_mat

SPLITS = ("train", "val", "test")
RUNS = ("run0", "run1", "run2")
IMAGE_SIZE = (320, 240)
INTRINSICS = np.array([[600.0, 0.0, 160.0], [0.0, 600.0, 120.0], [0.0, 0.0, 1.0]])
WORLD_TO_CAMERA = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # det -1
INFO_SUFFIX = "_info.mat"
# clips (videos) per folder in SURREAL's download lists (download/files/files_cmu_*.mp4.txt)
RELEASE_CLIPS = {"val": 507, "test": 12528}
PYAV = "av==18.1.0"
FIX = ("download the clip again (SURREAL's download/download_surreal.sh fetches single files, "
       "see `python -m data_scripts.surreal --check`)")


def find_root(raw_dir: str | Path) -> Path:
    """The folder holding ``cmu/`` (``raw_dir`` itself, or ``SURREAL/data`` or ``data``
    below it, as the archive unpacks)."""
    raw = Path(raw_dir)
    for cand in (raw, raw / "SURREAL" / "data", raw / "data", raw / "SURREAL"):
        if (cand / "cmu").is_dir():
            return cand
    if raw.name == "cmu" and raw.is_dir():
        return raw.parent
    raise DataError(f"SURREAL not found in {raw} (expected {raw / 'cmu'}/train/run0/<sequence>/"
                    "<sequence>_c0001.mp4 and _info.mat)",
                    "SURREAL needs the licence credentials: see `python -m data_scripts.surreal --check` "
                    "(data_scripts/README.md, SURREAL) for what to download and where to put it")


def list_clips(root: Path, split: str) -> list[Path]:
    """The ``_info.mat`` files of a split folder: runs 0, 1, 2, clips sorted by path."""
    out: list[Path] = []
    for run in RUNS:
        out += sorted((root / "cmu" / split / run).glob(f"*/*{INFO_SUFFIX}"))
    return out


def _with_frames(a: np.ndarray) -> np.ndarray:
    """A one-frame clip's (rows, 24) as (rows, 24, 1); anything else unchanged."""
    a = np.asarray(a)
    return a[..., None] if a.ndim == 2 else a


def load_clip(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``joints2D`` (T, 24, 2), ``joints3D`` (T, 24, 3) world metres and ``camLoc`` (3,)
    of one ``_info.mat``, shapes checked."""
    mat = load_mat(path, "SURREAL clip annotation", FIX, ("joints2D", "joints3D", "camLoc"))
    j2 = as_array(_with_frames(mat["joints2D"]), (2, 24, None), f"{path}: joints2D", FIX)
    j3 = as_array(_with_frames(mat["joints3D"]), (3, 24, j2.shape[2]), f"{path}: joints3D", FIX)
    cam = as_array(np.asarray(mat["camLoc"]).reshape(-1), (3,), f"{path}: camLoc", FIX)
    return j2.transpose(2, 1, 0), j3.transpose(2, 1, 0), cam


def world_to_camera(joints3d: np.ndarray, cam_loc: np.ndarray) -> np.ndarray:
    """SURREAL world metres (..., 3) to camera metres: ``R (X - camLoc)``."""
    return (np.asarray(joints3d) - np.asarray(cam_loc)) @ WORLD_TO_CAMERA.T


def read_folder(root: Path, split: str, every: int = 10, show_progress: bool = False) -> list[RawSample]:
    """Every ``every``-th frame of every clip of a split folder, in (run, clip, frame) order."""
    root = Path(root)
    every = check_every(every, "SURREAL")
    out: list[RawSample] = []
    clips = list_clips(root, split)
    for index, info in enumerate(progress(clips, desc=f"surreal/{split} annotations", unit="clip",
                                          disable=not show_progress)):
        j2, j3, cam_loc = load_clip(info)
        kp = smpl.to_body16(j2, crossed=True)
        cam = smpl.to_body16(world_to_camera(j3, cam_loc), crossed=True)
        clip = info.name[: -len(INFO_SUFFIX)]
        video = info.with_name(clip + ".mp4").relative_to(root).as_posix()
        for f in range(0, len(j2), every):
            out.append(RawSample(
                name=f"{video}#{f:04d}", image=video, keypoints2d=kp[f], visible=np.ones(16, bool),
                keypoints3d=cam[f], intrinsics=INTRINSICS, sequence=index, frame=f, image_size=IMAGE_SIZE,
                extra={"clip": clip, "run": info.parent.parent.name},
                annotation=str(info)))
    return out


def read(raw_dir: str | Path, every: int = 10, seed: int = 42,
         show_progress: bool = False) -> dict[str, list[RawSample]]:
    """``{"train": [...], "val": [...], "test": [...]}`` with TLL's per-folder seed-42 rule
    (see the module docstring), each split in (run, clip, frame) order."""
    root = find_root(raw_dir)
    out: dict[str, list[RawSample]] = {}
    for split in SPLITS:
        samples = read_folder(root, split, every, show_progress)
        if split == "val":
            out[split] = samples
            continue
        train, test = tll_split(len(samples), seed)
        keep = sorted(train if split == "train" else test)
        out[split] = [samples[i] for i in keep]
    return out


def verify(raw_dir: str | Path) -> dict:
    """Clips per split folder (and the release's count where known), every clip whose video
    or ``_info.mat`` is missing, and every split folder without clips."""
    root = find_root(raw_dir)
    report: dict = {"root": str(root), "missing": []}
    for split in SPLITS:
        infos = {p.with_name(p.name[: -len(INFO_SUFFIX)]) for p in list_clips(root, split)}
        videos = {p.with_suffix("") for run in RUNS for p in (root / "cmu" / split / run).glob("*/*.mp4")}
        known = f" (release: {RELEASE_CLIPS[split]})" if split in RELEASE_CLIPS else ""
        report[f"cmu/{split}"] = f"{len(infos)} clips{known}"
        if not infos:
            report["missing"].append(f"{root / 'cmu' / split}/run{{0,1,2}}/<sequence>/*{INFO_SUFFIX} (no clips)")
        report["missing"] += sorted(f"{p}.mp4" for p in infos - videos)
        report["missing"] += sorted(f"{p}{INFO_SUFFIX}" for p in videos - infos)
    return report


# ----------------------------------------------------------------------------- video frames


def require_video_backend() -> None:
    """PyAV, or a DataError saying how to install it (torchvision 0.29 decodes no video)."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise DataError("decoding SURREAL's .mp4 videos needs PyAV, which is not installed "
                        "(torchvision 0.29 has no video decoder)", f"pip install {PYAV}") from None


def decode_video(path: Path, fix: str = FIX) -> np.ndarray:
    """All frames of a video as uint8 (T, H, W, 3) RGB (PyAV), or a DataError naming it."""
    require_video_backend()
    import av

    if not path.is_file():
        raise DataError(f"video {path} is missing", fix)
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except Exception as e:  # noqa: BLE001 - PyAV raises its own FFmpegError family and OSError
        raise DataError(f"video {path} could not be decoded ({type(e).__name__}: {str(e).strip()[:200]})",
                        fix) from None
    if not frames:
        raise DataError(f"video {path} has no frames (truncated download?)", fix)
    return np.stack(frames)


class FrameReader:
    """The ``loader`` of the SURREAL script: a sample's frame as uint8 (3, H, W), decoding
    each video once (the last one is kept while its frames are asked for in order)."""

    def __init__(self):
        self._key = None
        self._frames: np.ndarray | None = None

    def frames(self, path: Path, fix: str = FIX) -> np.ndarray:
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is None or key != self._key:
            self._frames, self._key = None, None
            self._frames = decode_video(path, fix)
            self._key = key
        return self._frames

    def __call__(self, root: Path, sample: RawSample, fix: str = FIX):
        import torch

        path = Path(root) / sample.image
        frames = self.frames(path, fix)
        if not 0 <= sample.frame < len(frames):
            raise DataError(f"video {path} has {len(frames)} frames but its {INFO_SUFFIX} annotates frame "
                            f"{sample.frame} (truncated video?)", fix)
        frame = frames[sample.frame]
        W, H = sample.image_size or IMAGE_SIZE
        if frame.shape != (H, W, 3):
            raise DataError(f"video {path} has {frame.shape[1]} x {frame.shape[0]} frames, expected "
                            f"{W} x {H} (SURREAL's resolution)", fix)
        return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).contiguous()
