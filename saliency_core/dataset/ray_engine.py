"""The evaluation's per-image work on Ray Data: `from_items` → `map_batches(EvaluatorActor, ActorPoolStrategy)`,
one model per actor (a GPU each when the cluster has GPUs). The driver stores each image's rows through the
same part files as an in-process run, so a Ray run resumes an in-process one and the other way round.

Ray is imported here only: without `--engine ray` nothing imports it, and the library works without it.
Files are read by the actors: on a cluster, image and mask paths must be visible at the same place on every
node (a shared filesystem), and so must a weights file given as a path.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import SaliencyError
from .items import Item
from .store import Settings, weights_sha256


class EvaluatorActor:
    """A Ray actor: loads the model once, then evaluates a batch of items (rows as JSON, one per item)."""

    def __init__(self, settings: str, threads: int = 0) -> None:
        import torch

        import saliency_core as sc

        if threads > 0:  # the driver's thread count: the same summation order, so the same numbers
            torch.set_num_threads(threads)
        self.settings = Settings.from_dict(json.loads(settings))
        weights = None if self.settings.weights == "none" else self.settings.weights
        self.model = sc.load_model(self.settings.model, weights=weights)
        found = weights_sha256(self.settings.model, self.settings.weights, self.model.source_info())
        if found != self.settings.weights_sha256:
            raise SaliencyError(
                f"This worker's weights of {self.settings.model} differ from the driver's "
                f"(sha256 {found[:12] or '?'} vs {self.settings.weights_sha256[:12] or '?'})."
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from .evaluate import item_rows

        out: dict[str, list[str]] = {"sha256": [], "rows": [], "error": []}
        for item_text, methods_text in zip(batch["item"], batch["methods"]):
            item = Item(**json.loads(str(item_text)))
            rows: list[dict[str, Any]] = []
            error = ""
            try:
                rows.extend(item_rows(self.model, item, json.loads(str(methods_text)), self.settings))
            except SaliencyError as exc:
                error = str(exc)
            out["sha256"].append(item.sha256)
            out["rows"].append(json.dumps(rows, allow_nan=True))
            out["error"].append(error)
        return out


def _init(address: str | None, num_cpus: int | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so must shut it down)."""
    try:
        import ray
    except ImportError as exc:
        raise SaliencyError(
            "--engine ray needs Ray, which is not installed: pip install 'ray[data]' (see docs/datasets.md)."
        ) from exc
    if ray.is_initialized():
        return False
    # Our own progress bar counts images: Ray's bars and INFO lines would only interleave with it.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SaliencyError(f"Cannot start or reach Ray ({address or 'local'}): {exc}") from exc
    return True


def run_on_ray(
    todo: Sequence[tuple[Item, list[str]]],
    settings: Settings,
    address: str | None = None,
    num_cpus: int | None = None,
    threads: int | None = None,
) -> Iterator[tuple[Item, list[dict[str, Any]], str]]:
    """(item, its rows, error message or "") for each item of `todo` (with its pending methods), in the
    order Ray finishes them. Starts a local Ray with `num_cpus` CPUs unless `address` names a cluster (or
    Ray is already initialised); shuts down only a Ray it started."""
    if not todo:
        return
    started = _init(address, num_cpus)
    import ray
    from ray.data import ActorPoolStrategy

    try:
        import torch

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = max(1, min(len(todo), gpus or int(resources.get("CPU", 1))))
        records = [{"item": json.dumps(i.as_dict()), "methods": json.dumps(list(m))} for i, m in todo]
        data = ray.data.from_items(records, override_num_blocks=len(records))
        results = data.map_batches(
            EvaluatorActor,
            fn_constructor_kwargs={
                "settings": json.dumps(settings.as_dict()),
                "threads": threads if threads is not None else torch.get_num_threads(),
            },
            batch_size=1,
            compute=ActorPoolStrategy(min_size=1, max_size=actors),
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        by_key = {item.sha256: item for item, _ in todo}
        try:
            for row in results.iter_rows():
                yield by_key[str(row["sha256"])], json.loads(str(row["rows"])), str(row["error"])
        except (ray.exceptions.RayError, ray.data.exceptions.UserCodeException) as exc:
            # e.g. an actor that could not load the model: its message, not Ray's traceback
            cause = str(exc).strip().splitlines()
            raise SaliencyError(f"The Ray run stopped: {cause[-1] if cause else type(exc).__name__}") from exc
    finally:
        if started:
            ray.shutdown()
