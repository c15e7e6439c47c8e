"""LSP (Leeds Sports Pose): download, verify and prepare.

    python -m data_scripts.lsp --data-dir DATA_DIR [--download] [--crop full|box]
                               [--visibility tll|flag] [--check] [--force]

Downloads ``lsp_dataset.zip`` (public URL; no published checksum) into
``DATA_DIR/downloads``, unpacks it into ``DATA_DIR/raw/lsp``, checks that every annotated
image exists and prepares all 2,000 images as both ``train`` and ``test`` (TLL's protocol),
each the whole image in a zero-padded square as TLL's ResizePad shows it (``--crop box``:
the 1.5x box of the visible joints), into ``DATA_DIR/prepared/lsp``; see
:mod:`srpose_lib.data.readers.lsp`.
"""

from __future__ import annotations

from srpose_lib.data.readers import lsp

from .common import DatasetScript, run

SCRIPT = DatasetScript(
    name="lsp", read=lsp.read, verify=lsp.verify, find=lsp.find_root,
    options={"--crop": {"choices": lsp.CROPS, "default": "full",
                        "help": "full: the whole image, zero-padded to a square (TLL's ResizePad; "
                                "default); box: the 1.5x box of the visible joints"},
             "--visibility": {"choices": lsp.VISIBILITY, "default": "tll",
                              "help": "tll: visible = 1 - flag (TLL, default); flag: visible = flag "
                                      "(LSP's README)"}})


def main(argv=None) -> int:
    return run(SCRIPT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
