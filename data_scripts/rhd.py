"""RHD (Rendered Hand Pose): download, verify and prepare.

    python -m data_scripts.rhd --data-dir DATA_DIR [--download] [--check] [--force]

Downloads ``RHD_v1-1.zip`` (public URL; no published checksum) into ``DATA_DIR/downloads``,
unpacks it into ``DATA_DIR/raw/rhd/RHD_published_v2``, checks the image counts (41,258
training / 2,728 evaluation) and prepares the hand samples that pass the baselines' filter
(see :mod:`srpose_lib.data.readers.rhd`) into ``DATA_DIR/prepared/rhd`` (train, test).
"""

from __future__ import annotations

from srpose_lib.data.readers import rhd

from .common import DatasetScript, run

SCRIPT = DatasetScript(name="rhd", read=rhd.read, verify=rhd.verify, find=rhd.find_root, sources=rhd.split_sources)


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
