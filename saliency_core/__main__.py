"""`python -m saliency_core`: see saliency_core.cli."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
