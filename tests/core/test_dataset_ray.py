"""`evaluate --engine ray` on a local Ray instance (2 CPUs) gives the in-process run's table, and resumes
through the same part files. Skipped only when ray cannot be imported (it is a dev requirement)."""

from __future__ import annotations

import pandas as pd
import pytest

from saliency_core.cli import main
from saliency_core.dataset.summary import same_numbers

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements-dev.txt)")

# Deterministic maps: Grad-CAM, gradients and plain (not incremental) occlusion with a coarse patch and a
# fixed batch size (an automatic one is sized by the engine's first measurements, which a fresh actor has
# not made yet, and another batch size changes the last bits of a map).
ARGS = [
    "evaluate",
    "--methods",
    "gradcam,gradient,occlusion",
    "--param",
    "patch=56",
    "--param",
    "stride=56",
    "--param",
    "incremental=False",
    "--param",
    "batch_size=16",
    "--scenes",
    "3",
    "--steps",
    "3",
]
SUMMARY = [
    "deletion",
    "deletion_low",
    "deletion_high",
    "insertion",
    "insertion_low",
    "pointing",
    "energy_pointing",
]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_and_in_process_give_the_same_table(local_ray, tmp_path, capsys) -> None:
    here, there = tmp_path / "local", tmp_path / "ray"
    assert main([*ARGS, "--out", str(here)]) == 0
    assert main([*ARGS, "--out", str(there), "--engine", "ray"]) == 0
    assert "12 maps computed now (ray" in capsys.readouterr().err
    a, b = pd.read_parquet(here / "per_image.parquet"), pd.read_parquet(there / "per_image.parquet")
    assert len(a) == 12 and list(a["image"]) == list(b["image"]) and list(a["method"]) == list(b["method"])
    assert same_numbers(a, b)  # exactly: the same seeds and maps
    sa, sb = pd.read_parquet(here / "summary.parquet"), pd.read_parquet(there / "summary.parquet")
    assert same_numbers(sa, sb, SUMMARY)


def test_a_ray_run_resumes_an_interrupted_one(local_ray, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    whole = pd.read_parquet(out / "per_image.parquet")
    parts = sorted((out / "parts").glob("*/*/gradient.json"))
    parts[0].unlink()  # as if the run had stopped before this map
    capsys.readouterr()
    assert main([*ARGS, "--out", str(out), "--engine", "ray"]) == 0
    assert "1 maps computed now (ray" in capsys.readouterr().err
    assert same_numbers(whole, pd.read_parquet(out / "per_image.parquet"))
