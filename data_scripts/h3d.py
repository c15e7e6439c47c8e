"""H3D (Hand-3D-Studio): verify and prepare (no public download).

    python -m data_scripts.h3d --data-dir DATA_DIR [--task noobject|object|all] [--units auto|m|mm]
                               [--check] [--force]

The studio release is by request from the authors and TLL's ``H3D_crop.tar`` link is dead,
so nothing is downloaded: put TLL's ``H3D_crop`` folder or the studio images with an
``annotation.json`` you wrote (format in :mod:`srpose_lib.data.readers.h3d`) under
``DATA_DIR/raw/h3d/``; ``--check`` says exactly where. Prepares TLL's seed-42 split of the
``task``'s samples into ``DATA_DIR/prepared/h3d`` (train, test).
"""

from __future__ import annotations

from srpose_lib.data.readers import h3d

from .common import DatasetScript, run

SCRIPT = DatasetScript(
    name="h3d", read=h3d.read, verify=h3d.verify, find=lambda raw: h3d.find_root(raw)[0],
    options={"--task": {"choices": h3d.TASKS, "default": "noobject",
                        "help": "noobject (TLL's default: hands without objects), object or all"},
             "--units": {"choices": ("auto", "m", "mm"), "default": "auto",
                         "help": "units of keypoint3d in annotation.json (auto: mm when depths exceed 10)"}},
    image_fix="restore the image named in annotation.json (copy it again from your H3D release)")


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
