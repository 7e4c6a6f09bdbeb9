"""Evaluate methods over a dataset: per-image metrics for every method and the random baseline, stored
as resumable part files (store.py), gathered into a per-image table and a summary with bootstrap intervals.

In-process by default; `engine="ray"` runs the same per-image work on Ray Data (ray_engine.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, SaliencyError
from ..models import LoadedModel
from .items import Item, prepare
from .metrics import METRICS, RANDOM, image_rows
from .store import PartStore, Settings

Progress = Callable[[int, int, str], None]  # (finished images, all images, message)
Cancel = Callable[[], bool]  # True once the run should stop (e.g. threading.Event.is_set)
_WARMED: set[tuple[Any, ...]] = set()  # (model, module, input shape, method) run once in this process


@dataclass
class Outcome:
    """What an evaluation run did: rows of every image, how many (image, method) rows it computed now
    (the rest came from earlier runs), the images skipped with their message, and its seconds."""

    rows: list[dict[str, Any]]
    computed: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def all_methods(methods: Sequence[str]) -> list[str]:
    """The methods evaluated: those asked for, then the random baseline."""
    return [*(m for m in methods if m != RANDOM), RANDOM]


def item_rows(model: LoadedModel, item: Item, methods: Sequence[str], settings: Settings) -> Any:
    """Rows of `methods` on one item, yielded as each finishes, labelled with the image and its target.
    Raises SaliencyError (InvalidImage, ...) for an image that cannot be evaluated."""
    x, target, mask = prepare(model, item, settings.target)
    label = target.describe()
    index = getattr(target, "index", None)

    def rows(which: Sequence[str]) -> Any:
        return image_rows(
            model,
            x,
            target,
            mask,
            which,
            seed=item.seed,
            steps=settings.steps,
            substrate=settings.substrate,
            sanity=settings.sanity,
            params=dict(settings.params),
            tolerance=settings.tolerance,
        )

    # The engine runs a model's first batch at an input size as one measured image, so the first map
    # of a process is batched otherwise than the rest and can differ in its last bits. One discarded
    # run per method and size first makes every image's numbers independent of what the process did
    # before: a resumed run, a Ray actor and an uninterrupted run agree exactly.
    cold = [m for m in methods if (model.id, id(model.module), tuple(x.shape), m) not in _WARMED]
    if cold:
        for _ in rows(cold):
            pass
        _WARMED.update((model.id, id(model.module), tuple(x.shape), m) for m in cold)
    for row in rows(methods):
        yield {"image": item.name, "sha256": item.sha256, "target_index": index, "target_label": label, **row}


def evaluate_items(
    model: LoadedModel | None,
    items: Sequence[Item],
    methods: Sequence[str],
    settings: Settings,
    out: Path,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    engine: str = "local",
    address: str | None = None,
    num_cpus: int | None = None,
) -> Outcome:
    """Evaluate `items` (resuming from `out`'s part files): every row of every item, in item order.

    `model` is used in-process; with `engine="ray"` each Ray actor loads its own (model may be None).
    In-process, `cancel()` is asked before each map: once it is true the run raises sc.Cancelled, keeping
    every row finished so far in the part files (running it again resumes from there)."""
    began = time.perf_counter()
    store = PartStore(out, settings)
    wanted = all_methods(methods)
    todo = [(item, store.pending(item.key, wanted)) for item in items]
    todo = [(item, pending) for item, pending in todo if pending]
    skipped: list[tuple[str, str]] = []
    computed = 0
    finished = len(items) - len(todo)
    if progress is not None:
        progress(finished, len(items), f"{finished} images already done" if finished else "starting")
    if engine == "ray":
        from .ray_engine import run_on_ray  # optional: only this path needs ray

        for item, rows, error in run_on_ray(todo, settings, address=address, num_cpus=num_cpus):
            finished += 1
            if error:
                skipped.append((item.name, error))
            for row in rows:
                store.write(item.key, row)
                computed += 1
            if progress is not None:
                progress(finished, len(items), item.name)
    else:
        if model is None:
            raise ValueError("An in-process evaluation needs the model.")
        for item, pending in todo:
            _stop_if(cancel)
            try:
                for row in item_rows(model, item, pending, settings):
                    store.write(item.key, row)  # at once: an interruption loses at most this map
                    computed += 1
                    _stop_if(cancel)
            except Cancelled:  # a SaliencyError too, but the run's end, not this image's problem
                raise
            except SaliencyError as exc:
                skipped.append((item.name, str(exc)))
            finished += 1
            if progress is not None:
                progress(finished, len(items), item.name)
    rows = [
        {**store.read(i.key, m), "source": source_of(i)}
        for i in items
        for m in wanted
        if store.done(i.key, m)
    ]
    return Outcome(rows, computed, skipped, time.perf_counter() - began)


def _stop_if(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("Cancelled; the finished rows are kept, and running again resumes from them.")


def source_of(item: Item) -> str:
    """Where an item's image comes from: its file, or `scene:<seed>` for a generated scene."""
    return item.path if item.path is not None else f"scene:{item.scene_seed}"


def per_image_frame(rows: Sequence[dict[str, Any]], settings: Settings) -> Any:
    """The per-image table (pandas): one row per image and method, the metrics and the settings."""
    import pandas as pd

    columns = ["image", "source", "sha256", "target_index", "target_label", "method", *METRICS, "seconds"]
    frame = pd.DataFrame(list(rows), columns=columns)
    frame.insert(6, "model", settings.model)
    frame.insert(7, "weights", settings.weights)
    return frame
