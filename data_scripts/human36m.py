"""Human3.6M (G. Moon's JSON release): verify and prepare (no public download).

    python -m data_scripts.human36m --data-dir DATA_DIR [--every 5] [--test-size 3200]
                                    [--check] [--force]

Human3.6M needs a registration, and the JSON release the baselines read is not on a public
address: put its ``annotations/`` and ``images/`` under ``DATA_DIR/raw/human36m/``
(``--check`` says exactly where). Takes every 5th image of each subject (TLL), projects the
world joints with each camera, crops 1.5x around them and prepares ``train`` (S1, S5-S8)
and ``test`` (a seeded sample of S9 + S11 without replacement) into
``DATA_DIR/prepared/human36m``; see :mod:`srpose_lib.data.readers.human36m`.
"""

from __future__ import annotations

from srpose_lib.data.readers import human36m

from .common import DatasetScript, run, whole_number

SCRIPT = DatasetScript(
    name="human36m", read=human36m.read, verify=human36m.verify, find=human36m.find_root,
    options={"--every": {"type": whole_number(1, "keep one image in N"), "default": human36m.EVERY,
                         "help": "keep image i of a subject's list when i %% N == 0 (TLL: 5)"},
             "--test-size": {"type": whole_number(0, "test samples, 0 keeps all"),
                             "default": human36m.TEST_SIZE,
                             "help": "test samples drawn from S9 + S11 without replacement "
                                     "(default 3200, as TLL's count; 0 keeps all)"}},
    image_fix="restore the image from G. Moon's Human3.6M release (the data.json file names it)",
    read_progress=True, sources=human36m.split_sources)


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
