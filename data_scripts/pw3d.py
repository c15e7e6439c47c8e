"""3DPW (3D Poses in the Wild): verify and prepare (download by hand after the licence).

    python -m data_scripts.pw3d --data-dir DATA_DIR [--every N] [--min-visible 6] [--tll-cross]
                                [--check] [--force]

Put ``imageFiles/`` and ``sequenceFiles/`` (both zips, unpacked) under ``DATA_DIR/raw/pw3d/``
(``--check`` says exactly where). Projects every actor's SMPL joints into the frames whose
camera pose is valid, maps them to Body16 without TLL's left/right cross (3DPW's camera is
real) and prepares the official train, validation (``val``) and test folders into
``DATA_DIR/prepared/pw3d``; see :mod:`srpose_lib.data.readers.pw3d`.
"""

from __future__ import annotations

from srpose_lib.data.readers import pw3d

from .common import DatasetScript, run, whole_number

SCRIPT = DatasetScript(
    name="pw3d", read=pw3d.read, verify=pw3d.verify, find=pw3d.find_root,
    options={"--every": {"type": whole_number(1, "keep one frame in N"), "default": 1,
                         "help": "keep one frame in N (default: all)"},
             "--min-visible": {"type": whole_number(0, "visible joints a frame needs"),
                               "default": pw3d.MIN_VISIBLE,
                               "help": "skip an actor's frame with fewer joints inside the image "
                                       "(default 6)"},
             "--tll-cross": {"action": "store_true", "default": False,
                             "help": "map SMPL's left joints to Body16's right ones, as TLL does for "
                                     "SURREAL (default: the person's own left and right)"}},
    image_fix="restore the image from imageFiles.zip", read_progress=True)


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
