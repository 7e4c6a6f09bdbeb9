"""Dataset evaluation: per-image numbers are sc.metrics' numbers, an interrupted run resumes without
computing anything twice, different settings never mix, and the CLI writes its tables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import saliency_core as sc
from saliency_core.cli import main
from saliency_core.dataset import RANDOM, Settings, evaluate_items, per_image_frame, prepare, scene_items
from saliency_core.dataset.metrics import random_map
from saliency_core.dataset.summary import same_numbers
from saliency_core.engine.core import Engine

SEEDS = [1_900_000, 1_900_001, 1_900_002]


@pytest.fixture(scope="module")
def model():
    return sc.load_model("shapes_demo")


def _settings(steps: int = 3) -> Settings:
    return Settings(model="shapes_demo", weights="default", weights_sha256="test", steps=steps)


def test_per_image_metrics_equal_sc_metrics(model, tmp_path) -> None:
    items = scene_items(SEEDS[:2])
    outcome = evaluate_items(model, items, ["gradcam"], _settings(), tmp_path)
    assert outcome.computed == 4 and [r["method"] for r in outcome.rows] == ["gradcam", RANDOM] * 2
    for item, rows in zip(items, (outcome.rows[:2], outcome.rows[2:])):
        x, target, mask = prepare(model, item)
        maps = {
            "gradcam": sc.attribute(model, x, "gradcam", target).map,
            RANDOM: random_map((224, 224), item.seed),
        }
        for row in rows:
            sal = maps[row["method"]]
            assert row["deletion"] == pytest.approx(
                sc.metrics.deletion(model, x, target, sal, steps=3).auc, abs=1e-9
            )
            assert row["insertion"] == pytest.approx(
                sc.metrics.insertion(model, x, target, sal, steps=3).auc, abs=1e-9
            )
            assert row["pointing"] == float(sc.metrics.pointing_game(sal, mask))
            assert row["energy_pointing"] == pytest.approx(sc.metrics.energy_pointing(sal, mask), abs=1e-9)
            assert np.isnan(row["sanity"]) and row["target_index"] == target.index


class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_computes_only_the_rest(model, tmp_path, monkeypatch) -> None:
    calls: list[str] = []
    original = Engine.attribute

    def counting(self, m, x, method, *args, **kwargs):
        calls.append(method)
        return original(self, m, x, method, *args, **kwargs)

    items = scene_items(SEEDS)
    methods = ["gradcam", "gradient"]
    # First the uninterrupted run: it also makes this process's one discarded warm-up run per method
    whole = evaluate_items(model, items, methods, _settings(), tmp_path / "whole")
    monkeypatch.setattr(Engine, "attribute", counting)

    def stop_after_first(done: int, total: int, name: str) -> None:
        if done == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        evaluate_items(model, items, methods, _settings(), tmp_path / "run", progress=stop_after_first)
    assert len(calls) == 2  # the first image's two maps
    calls.clear()
    resumed = evaluate_items(model, items, methods, _settings(), tmp_path / "run")
    assert len(calls) == 4 and resumed.computed == 6  # two images × (two methods + the baseline)
    calls.clear()
    again = evaluate_items(model, items, methods, _settings(), tmp_path / "run")
    assert calls == [] and again.computed == 0
    a, b = per_image_frame(resumed.rows, _settings()), per_image_frame(whole.rows, _settings())
    assert len(a) == 9 and same_numbers(a, b) and list(a["image"]) == list(b["image"])


def test_other_settings_get_their_own_keys(model, tmp_path) -> None:
    items = scene_items(SEEDS[:1])
    first = evaluate_items(model, items, ["gradcam"], _settings(3), tmp_path)
    other = evaluate_items(model, items, ["gradcam"], _settings(4), tmp_path)
    assert first.computed == other.computed == 2  # nothing of the 3-step run reused for 4 steps
    assert len(list((tmp_path / "parts").iterdir())) == 2
    assert first.rows[0]["deletion"] != other.rows[0]["deletion"]


def test_evaluate_command_writes_tables_and_resumes(tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--methods", "gradcam,gradient", "--scenes", "2", "--steps", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "random (baseline)" in printed.out and "[2/2]" in printed.err
    per_image = pd.read_parquet(out / "per_image.parquet")
    assert len(per_image) == 6 and pd.read_csv(out / "per_image.csv").shape == per_image.shape
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["method"]: r for r in summary["methods"]}
    assert set(rows) == {"gradcam", "gradient", RANDOM} and rows[RANDOM]["baseline"]
    assert rows["gradcam"]["deletion_low"] <= rows["gradcam"]["deletion"] <= rows["gradcam"]["deletion_high"]
    assert pd.read_csv(out / "summary.csv").shape[0] == 3
    assert main(args) == 0
    assert "0 maps computed now" in capsys.readouterr().err


def test_evaluate_a_folder_with_masks_and_a_bad_image(tmp_path, capsys) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    sample = next(s for s in sc.list_samples() if s.id == "scene_01")
    shutil.copy(sample.path, images / "one.png")
    shutil.copy(sample.mask_path, masks / "one.png")
    (images / "two.png").write_bytes(b"nope")
    out = tmp_path / "eval"
    base = ["evaluate", "--methods", "gradcam", "--steps", "3", "--out", str(out)]
    assert main([*base, "--images", str(images)]) == 2  # no masks yet: no pointing
    assert pd.read_csv(out / "per_image.csv")["pointing"].isna().all()
    assert main([*base, "--images", str(images), "--masks", str(masks)]) == 2  # the rows with a mask are new
    err = capsys.readouterr().err
    assert "two" in err and "not an image" in err and "Traceback" not in err
    per_image = pd.read_csv(out / "per_image.csv")
    assert list(per_image["image"]) == ["one", "one"] and per_image["pointing"].notna().all()
    assert per_image["source"].str.endswith("one.png").all()
    assert main([*base, "--images", str(tmp_path / "nowhere")]) == 1
    assert "no bundled sample" in capsys.readouterr().err


def test_without_engine_nothing_imports_ray(tmp_path) -> None:
    code = (
        "import sys; from saliency_core.cli import main; "
        f"assert main(['evaluate', '--methods', 'gradcam', '--scenes', '1', '--steps', '2', '--out', {str(tmp_path)!r}]) == 0; "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_engine_ray_without_ray_installed_is_a_message(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    args = ["evaluate", "--methods", "gradcam", "--scenes", "1", "--steps", "2", "--out", str(tmp_path)]
    assert main([*args, "--engine", "ray"]) == 1
    assert "needs Ray" in capsys.readouterr().err
    assert main([*args, "--address", "auto"]) == 1
    assert "--engine ray" in capsys.readouterr().err


def test_sanity_column_is_the_cascading_randomisation_similarity(model, tmp_path) -> None:
    (item,) = scene_items(SEEDS[:1])
    settings = Settings("shapes_demo", "default", "test", steps=2, sanity=True)
    rows = evaluate_items(model, [item], ["gradcam"], settings, tmp_path).rows
    x, target, _ = prepare(model, item)
    check = sc.metrics.cascading_randomization(model, x, target, "gradcam", seed=item.seed)
    assert rows[0]["sanity"] == pytest.approx(check.spearman[-1], abs=1e-9)
    assert np.isnan(rows[1]["sanity"])  # the random baseline has no model to randomise


def test_a_file_over_the_image_size_limit_is_a_problem_not_read(tmp_path) -> None:
    from saliency_core.dataset.items import file_items
    from saliency_core.dataset.sources import ImageSource

    sample = next(s for s in sc.list_samples() if s.id == "scene_01")
    small, big, mask = tmp_path / "small.png", tmp_path / "big.png", tmp_path / "big_mask.png"
    shutil.copy(sample.path, small)
    limit = small.stat().st_size + 10
    big.write_bytes(b"\0" * (limit + 1))
    mask.write_bytes(b"\0" * (limit + 1))
    previous = sc.set_limits(max_image_bytes=limit)
    try:
        items, problems = file_items(
            [ImageSource(small, "small", small.name, mask_path=mask), ImageSource(big, "big", big.name)]
        )
    finally:
        sc.set_limits(previous)
    assert [i.name for i in items] == ["small"] and items[0].mask_sha256 == "unreadable"
    assert [p for p, _ in problems] == [str(big)] and "max_image_bytes" in problems[0][1]
