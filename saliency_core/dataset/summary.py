"""The summary of an evaluation: per method, each metric's mean over images and its bootstrap 95%
interval, beside the random-map baseline; written as CSV, Parquet and JSON and printed as a table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..metrics.card import to_jsonable
from .bootstrap import RESAMPLES, SEED, bootstrap_interval
from .metrics import METRICS, RANDOM

BETTER = {"deletion": "↓", "insertion": "↑", "pointing": "↑", "energy_pointing": "↑", "sanity": "↓"}


def summarise(frame: Any, resamples: int = RESAMPLES, seed: int = SEED) -> Any:
    """One row per method (in the per-image table's order, the baseline last): images, and per metric
    `<metric>`, `<metric>_low`, `<metric>_high` (NaN where the metric applies to no image), seconds."""
    import pandas as pd

    rows = []
    order = list(dict.fromkeys(frame["method"]))
    order = [m for m in order if m != RANDOM] + ([RANDOM] if RANDOM in order else [])
    for method in order:
        part = frame[frame["method"] == method]
        row: dict[str, Any] = {"method": method, "baseline": method == RANDOM, "images": len(part)}
        for metric in METRICS:
            mean, low, high = bootstrap_interval(part[metric].to_numpy(float), resamples, seed=seed)
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean, low, high
        seconds = part["seconds"].to_numpy(float)
        finite = seconds[~pd.isna(seconds)]
        row["seconds"] = float(finite.mean()) if finite.size else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def table_text(summary: Any) -> str:
    """The summary as a plain-text table: mean [low, high] per metric; metrics no image has are left out."""
    shown = [m for m in METRICS if summary[m].notna().any()]
    header = ["method", "images", *(f"{m} {BETTER[m]}" for m in shown), "s/map"]
    lines = []
    for _, r in summary.iterrows():
        cells = [f"{r['method']}{' (baseline)' if r['baseline'] else ''}", str(int(r["images"]))]
        for m in shown:
            cells.append(
                "—" if math.isnan(r[m]) else f"{r[m]:.3f} [{r[f'{m}_low']:.3f}, {r[f'{m}_high']:.3f}]"
            )
        cells.append("—" if math.isnan(r["seconds"]) else f"{r['seconds']:.3f}")
        lines.append(cells)
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(c) for c in lines)])


def write_tables(out: Path, per_image: Any, summary: Any, meta: dict[str, Any]) -> list[Path]:
    """per_image.{parquet,csv} and summary.{parquet,csv,json} under `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        out / n
        for n in ("per_image.parquet", "per_image.csv", "summary.parquet", "summary.csv", "summary.json")
    ]
    per_image.to_parquet(paths[0], index=False)
    per_image.to_csv(paths[1], index=False)
    summary.to_parquet(paths[2], index=False)
    summary.to_csv(paths[3], index=False)
    content = {**to_jsonable(meta), "methods": to_jsonable(summary.to_dict(orient="records"))}
    paths[4].write_text(json.dumps(content, indent=2, ensure_ascii=False))
    return paths


def same_numbers(a: Any, b: Any, columns: Sequence[str] = METRICS, atol: float = 0.0) -> bool:
    """Whether two per-image (or summary) tables hold the same metric values (NaN equal to NaN)."""
    import numpy as np

    if len(a) != len(b):
        return False
    return all(
        np.allclose(a[c].to_numpy(float), b[c].to_numpy(float), rtol=0.0, atol=atol, equal_nan=True)
        for c in columns
    )
