"""FreiHAND: download, verify and prepare.

    python -m data_scripts.freihand --data-dir DATA_DIR [--download] [--task all|gs|hom|sample|auto]
                                    [--check] [--force]

Downloads ``FreiHAND_pub_v2.zip`` (public URL; no published checksum) into
``DATA_DIR/downloads``, unpacks it into ``DATA_DIR/raw/freihand``, checks that every image of
the task exists and prepares TLL's seed-42 split (task ``all``: 127,040 train / 3,200 test,
every image flipped to look like a left hand) into ``DATA_DIR/prepared/freihand``.
"""

from __future__ import annotations

from srpose_lib.data.readers import freihand

from .common import DatasetScript, run

SCRIPT = DatasetScript(
    name="freihand", read=freihand.read, verify=freihand.verify, find=freihand.find_root,
    options={"--task": {"choices": freihand.TASKS, "default": "all",
                        "help": "all four versions (TLL's default) or one of gs, hom, sample, auto"}})


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
