"""A small evaluation on the generated scenes, as the dashboard's Benchmark page runs it: progress and
cancel hooks, part files shared by every run of the same settings (so a rerun resumes), and tables in a
folder named for what was asked (so a finished run opens at once, without loading the model).

```python
from saliency_core.dataset.scenes_run import ScenesRun, run_scenes
run = ScenesRun("shapes_demo", ("gradcam", "gradient"), scenes=10, steps=20)
folder = run_scenes(run, Path("saliency_eval"), progress=print)
```
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameter
from ..limits import limits
from ..models.registry import get_spec
from ..zoo.scenes import SHAPE_CLASSES, make_scene
from .evaluate import Cancel, all_methods, evaluate_items, per_image_frame
from .evaluate_cli import SCENE_SEED_START
from .items import scene_items
from .store import Settings, weights_sha256
from .summary import summarise, write_tables

MAX_SCENES = 50  # a page's run: larger evaluations belong to `python -m saliency_core evaluate`
PARTS = "_scene_parts"  # under the root: the part files of every scenes run (no tables: never listed)
RunProgress = Callable[[float, str], None]  # (fraction in [0, 1], message)


@dataclass(frozen=True)
class ScenesRun:
    """What a scenes run evaluates: a model trained on the scenes, methods, how many scenes, curve steps,
    and "default" or "none" (random init) weights."""

    model: str
    methods: tuple[str, ...]
    scenes: int
    steps: int = 20
    weights: str = "default"

    def check(self) -> None:
        """Raise InvalidParameter (or ResourceLimit) for a run that must not start."""
        if self.model not in scene_models():
            raise InvalidParameter(f"'{self.model}' is not a model trained on the generated scenes.")
        if not self.methods:
            raise InvalidParameter("Choose at least one method.")
        if not 1 <= self.scenes <= MAX_SCENES:
            raise InvalidParameter(f"The number of scenes must be between 1 and {MAX_SCENES}.")
        if self.steps < 2:
            raise InvalidParameter("The curves need at least 2 steps.")
        limits().check("max_metric_steps", self.steps, "The number of steps")
        if self.weights not in ("default", "none"):
            raise InvalidParameter("Weights are 'default' or 'none' (random init).")

    def folder_name(self) -> str:
        """The tables' folder: readable, and unique for the model, weights, steps, scenes and methods."""
        what = json.dumps([self.model, self.weights, self.steps, self.scenes, sorted(self.methods)])
        digest = hashlib.sha256(what.encode()).hexdigest()[:10]
        random = "-random" if self.weights == "none" else ""
        return f"scenes-{self.model}{random}-{self.scenes}x{self.steps}-{digest}"


def scene_models() -> list[str]:
    """Ids of the registered classifiers whose classes are the scenes' shapes (the target of a scene is
    its true class, which only these know)."""
    from ..models import list_models

    found = []
    for info in list_models():
        if info.task != "classification" or info.num_classes != len(SHAPE_CLASSES):
            continue
        categories = get_spec(info.id).categories
        names = categories() if callable(categories) else categories
        if tuple(names or ()) == SHAPE_CLASSES:
            found.append(info.id)
    return found


def scene_seed(source: str) -> int | None:
    """The seed of a per-image table's `scene:<seed>` source, else None."""
    kind, _, seed = str(source).partition(":")
    return int(seed) if kind == "scene" and seed.isdigit() else None


def scene_png(seed: int) -> bytes:
    """The generated scene of `seed` as PNG bytes (what the evaluation saw, byte for byte)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(make_scene(int(seed)).image).save(buffer, format="PNG")
    return buffer.getvalue()


def finished(run: ScenesRun, root: Path) -> Path | None:
    """The run's folder when its tables are written (it opens without any model pass), else None."""
    folder = Path(root) / run.folder_name()
    done = all((folder / name).is_file() for name in ("per_image.parquet", "summary.json"))
    return folder if done else None


def run_scenes(
    run: ScenesRun,
    root: Path,
    *,
    progress: RunProgress | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """Evaluate the run (resuming from the part files under `root`) and write its tables; their folder.

    Raises sc.Cancelled once `cancel()` is true (the finished rows are kept for the next run)."""
    from .. import load_model  # the engine's loaded model, shared with the app's sessions

    run.check()
    root = Path(root)
    items = scene_items(range(SCENE_SEED_START, SCENE_SEED_START + run.scenes))
    say = progress or (lambda fraction, message: None)
    say(0.0, f"loading {run.model}")
    model = load_model(run.model, weights=None if run.weights == "none" else "default")
    settings = Settings(
        model=run.model,
        weights=run.weights,
        weights_sha256=weights_sha256(run.model, run.weights, model.source_info()),
        steps=run.steps,
    )

    def images_done(done: int, total: int, name: str) -> None:
        say(done / max(total, 1), f"{done} of {total} scenes" + (f" ({name})" if done else ""))

    outcome = evaluate_items(
        model, items, list(run.methods), settings, root / PARTS, progress=images_done, cancel=cancel
    )
    per_image = per_image_frame(outcome.rows, settings)
    if per_image.empty:
        raise InvalidParameter("Nothing could be evaluated: " + "; ".join(m for _, m in outcome.skipped))
    meta = {
        "settings": settings.as_dict(),
        "methods_asked": all_methods(run.methods),
        "images": len(items),
        "scenes": [SCENE_SEED_START, run.scenes],
        "skipped": [list(s) for s in outcome.skipped],
    }
    folder = root / run.folder_name()
    # Written beside, then renamed: a page listing the root never opens half-written tables.
    staging = root / f".{run.folder_name()}.tmp"
    paths = write_tables(staging, per_image, summarise(per_image), meta)
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(paths, key=lambda p: p.name == "summary.json"):  # summary.json last: "finished"
        path.replace(folder / path.name)
    staging.rmdir()
    say(1.0, "done")
    return folder
