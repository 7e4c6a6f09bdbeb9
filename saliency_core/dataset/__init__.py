"""From one image to a dataset: batch `explain`, dataset `evaluate` with bootstrap intervals and resumable
part files, and the same evaluation on Ray Data (`ray_engine`, imported only when asked for).

```python
from saliency_core.dataset import evaluate_items, scene_items, Settings, summarise, per_image_frame
```
"""

from __future__ import annotations

from .bootstrap import bootstrap_interval
from .evaluate import Outcome, all_methods, evaluate_items, item_rows, per_image_frame
from .items import Item, file_items, prepare, scene_items
from .metrics import RANDOM, image_rows, map_metrics
from .sources import ImageSource, expand_sources
from .store import PartStore, Settings, weights_sha256
from .summary import summarise, table_text, write_tables

__all__ = [
    "RANDOM",
    "ImageSource",
    "Item",
    "Outcome",
    "PartStore",
    "Settings",
    "all_methods",
    "bootstrap_interval",
    "evaluate_items",
    "expand_sources",
    "file_items",
    "image_rows",
    "item_rows",
    "map_metrics",
    "per_image_frame",
    "prepare",
    "scene_items",
    "summarise",
    "table_text",
    "weights_sha256",
    "write_tables",
]
