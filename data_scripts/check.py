"""Report every registered dataset: ``python -m data_scripts.check --data-dir DATA_DIR``.

For each dataset in :data:`srpose_lib.data.readers.DATASETS`: whether it is prepared (and its
counts), whether its raw release is there, and, when something is missing, what to download
and from where. Exit code 0 when every dataset is prepared, else 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from srpose_lib.data.readers import DATASETS

from .common import default_data_dir, format_check


def check_all(data_dir: Path) -> tuple[list[str], bool]:
    """(text per dataset, all complete)."""
    texts, complete = [], True
    for name, info in DATASETS.items():
        try:
            module = importlib.import_module(f"data_scripts.{info['script']}")
            report = module.SCRIPT.check(data_dir)
        except ImportError as e:
            texts.append(f"{name} — {info.get('title', name)}\n  script data_scripts/{info['script']}.py "
                         f"is not available ({e})")
            complete = False
            continue
        texts.append(format_check(report))
        complete &= bool(report["prepared"]["complete"])
    return texts, complete


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_scripts.check",
                                description="Report what is present and missing for every real dataset.")
    p.add_argument("--data-dir", default=None, help="the data folder (default: SRPOSE_DATA_DIR or <repo>/data)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    texts, complete = check_all(data_dir)
    print(f"real datasets in {data_dir}:\n")
    print("\n\n".join(texts))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
