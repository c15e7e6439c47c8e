"""SURREAL: verify and prepare (download by hand: the files need SURREAL's credentials).

    python -m data_scripts.surreal --data-dir DATA_DIR [--every N] [--check] [--force]

Put the ``cmu/{train,val,test}/run*/<sequence>/*.mp4`` videos and their ``*_info.mat``
annotations under ``DATA_DIR/raw/surreal/`` (``--check`` says exactly where). Decodes the
frames from the videos with PyAV (``pip install av==18.1.0``; torchvision 0.29 has no video
decoder), maps SMPL-24 to Body16 with TLL's left/right-crossed map and prepares TLL's
per-folder seed-42 split (train, val, test) of one frame in ``--every`` into
``DATA_DIR/prepared/surreal``; see :mod:`srpose_lib.data.readers.surreal`.
"""

from __future__ import annotations

from srpose_lib.data.readers import surreal

from .common import DatasetScript, run, whole_number


def _read(raw_dir, every: int = 10, show_progress: bool = True):
    surreal.require_video_backend()  # before reading thousands of annotation files
    return surreal.read(raw_dir, every=every, show_progress=show_progress)


SCRIPT = DatasetScript(
    name="surreal", read=_read, verify=surreal.verify, find=surreal.find_root,
    options={"--every": {"type": whole_number(1, "keep one frame in N"), "default": 10,
                         "help": "keep one frame in N of each clip (default 10: frames 0, 10, ..., 90)"}},
    image_fix=surreal.FIX, loader=surreal.FrameReader(), read_progress=True)


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
