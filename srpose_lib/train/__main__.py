"""``python -m srpose_lib.train <stage> ...`` (also under ``torchrun``): see train/cli.py."""

import sys

from .cli import main

sys.exit(main())
