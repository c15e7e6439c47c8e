"""MVHand (multiviewDataset, BMVC 2021): verify and prepare (download by hand).

    python -m data_scripts.mvhand --data-dir DATA_DIR [--every N] [--no-flip] [--check] [--force]

The data is a Dropbox shared folder (link in github.com/ShichengChen/multiviewDataset), too
many files for an automatic zip download: fetch the four sequence folders by hand into
``DATA_DIR/raw/mvhand/`` (``--check`` says where). Projects the world joints into each of the
four views with the toolkit's per-camera intrinsics and prepares srpose's split (seed-42
shuffle of instants, all four views of an instant on one side) into
``DATA_DIR/prepared/mvhand``; see :mod:`srpose_lib.data.readers.mvhand`.
"""

from __future__ import annotations

from srpose_lib.data.readers import mvhand

from .common import DatasetScript, run, whole_number


def _read(raw_dir, every: int = 1, no_flip: bool = False):
    return mvhand.read(raw_dir, every=every, flip=not no_flip)


SCRIPT = DatasetScript(
    name="mvhand", read=_read, verify=mvhand.verify,
    find=lambda raw: (mvhand.find_sequences(raw), raw)[1],
    options={"--every": {"type": whole_number(1, "keep one frame in N"), "default": 1,
                         "help": "keep one frame in N (default: all)"},
             "--no-flip": {"action": "store_true", "default": False,
                           "help": "keep the right hands as recorded (default: mirror them to look "
                                   "like RHD's left hands)"}})


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
