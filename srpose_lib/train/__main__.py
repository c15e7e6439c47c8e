"""``python -m srpose_lib.train <stage> ...`` (also under ``torchrun``): see srpose_lib/headless.py
(kept outside train/, because it reads the presets, which import train/)."""

import sys

from ..headless import main

sys.exit(main())
